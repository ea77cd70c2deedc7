"""The end of docs/mil_loss_analysis.md: the final decision with every option's verdict, the
per-fold and CV summary tables, and the figures (validation AUC per epoch, one panel per
configuration; the chosen option's test ROC, one line per fold model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reports.markdown import table
from reports.plots import auc_curves, roc_folds
from reports.query import predictions
from reports.resample import weighted_auc
from reports.stats import fmt, mean_std
from reports.studies.mil.data import SUMMARY_KEYS, TEST, VAL, MilStudy, Option, fold_metrics
from reports.studies.mil.objective import objective_line
from reports.studies.mil.verdicts import stab, verdict

NAMES = {"balanced_accuracy": "Balanced accuracy", "f1": "F1", "auc": "Test AUC"}


def _roc(ms: MilStudy, c: Option) -> tuple[list, str]:
    """(fold, 0/1 labels, scores) per fold model (its first seed), positive: metrics.json's
    `positive_class` (a name or an index), else class index 1; and the positive class's name."""
    curves, pos_name = [], "?"
    for f in c.folds:
        run = f.row.first()
        pred = predictions(run) if run is not None else None
        if pred is None or f"{ms.task}/label" not in pred:
            continue
        cols = [x for x in pred.columns if x.startswith(f"{ms.task}/p/")]
        meta = fold_metrics(f)
        pos, classes = meta.get("positive_class"), meta.get("classes") or [x.split("/")[-1] for x in cols]
        i = int(pos) if str(pos).isdigit() else classes.index(pos) if pos in classes else 1
        col = f"{ms.task}/p/{classes[i]}" if i < len(classes) else ""
        col = col if col in pred else cols[i] if i < len(cols) else ""
        y = (pred[f"{ms.task}/label"].to_numpy() == i).astype(int)
        if col and len(np.unique(y)) == 2:
            curves.append((f.fold, y, pred[col].to_numpy(float)))
            pos_name = str(classes[i]) if i < len(classes) else str(i)
    return curves, pos_name


def plots_section(ms: MilStudy, img: Path) -> list[str]:
    """Validation AUC per epoch (the swings the stability rule is about) and the chosen option's test ROC."""
    ds = ms.sweep.dataset
    panels = []
    for o in ms.options:
        first = {f.fold: ms.curves.get(f.row.first()["run_id"], {}) for f in o.folds if f.ok}
        panels.append((o.short, {k: v for k, v in first.items() if v}))
    lines = ["### Plots", ""]
    if any(folds for _, folds in panels):  # no figure of empty panels
        rel = auc_curves(
            panels, f"{ds}: validation AUC per epoch (first seed of each fold)", img / f"{ds}_mil_val_auc.png"
        )
        lines += [f"![validation AUC per epoch, one panel per configuration]({rel})", ""]
    c = ms.chosen()
    curves, pos = _roc(ms, c) if c is not None else ([], "?")
    if curves:
        rel = roc_folds(curves, f"{ds}: {c.short} test ROC (positive: {pos})", img / f"{ds}_mil_roc.png")
        aucs = ", ".join(f"fold {k} {weighted_auc(y, p, np.ones((1, len(y))))[0]:.4f}" for k, y, p in curves)
        lines += [
            f"![test ROC of {c.short}, one line per fold model]({rel})",
            "",
            f"Test ROC of {c.short}, positive class {pos}, one line per fold model (its first seed); AUC from "
            f"the saved predictions: {aucs}.",
            "",
        ]
    else:
        lines += ["No ROC curve: no chosen option, or no test predictions with both classes.", ""]
    return lines


def _tables(ms: MilStudy) -> list[str]:
    """Validation / test AUC per fold and option; the CV summary from each run's metrics.json."""
    shown = ms.options
    rows = []
    for k in sorted({f.fold for o in shown for f in o.folds}):
        cells = []
        for o in shown:
            v, t = o.per_fold(VAL).get(k), o.per_fold(TEST).get(k)
            cells.append("failed" if v is None and t is None else f"{fmt(v)} / {fmt(t)}")
        rows.append([k, *cells])
    rows.append(["**Mean**", *(f"{fmt(o.mean(VAL))} / {fmt(o.mean(TEST))}" for o in shown)])
    lines = [
        "Per fold, validation AUC / test AUC:",
        "",
        *table(["Fold", *(o.short for o in shown)], rows),
        "",
    ]
    pos, summary = None, []
    for o in shown:
        got = [m for m in (fold_metrics(f) for f in o.folds if f.ok) if m]
        pos = pos or next((m.get("positive_class") for m in got if m.get("positive_class") is not None), None)
        summary.append([o.short, len(got), *(mean_std([m[k] for m in got]) for k in SUMMARY_KEYS)])
    head = ["Configuration", "Folds", *(NAMES.get(k, k.capitalize()) for k in SUMMARY_KEYS)]
    return lines + [
        "CV summary on the held-out test set from each run's `metrics.json` (mean ± std over folds):",
        "",
        *table(head, summary, "l" + "r" * (1 + len(SUMMARY_KEYS))),
        "",
        f"Positive class (sensitivity, specificity, F1): {pos if pos is not None else 'not recorded'}.",
        "",
        # every model of this study is DSMIL: a run that does not say trained the only objective then
        *objective_line([(o.short, o) for o in shown], default="mean_ce"),
    ]


def decision_section(ms: MilStudy, img: Path) -> list[str]:
    """The choice and why each other option lost, the tables behind it, the figures."""
    c = ms.chosen()
    lines = ["### Final decision and justification", ""]
    if c is None:
        lines += [
            "No loss option is stable by the rule: no choice. "
            + "; ".join(f"{o.short}: {stab(o)}" for o in ms.candidates)
            + ".",
            "",
        ]
    else:
        lines += [
            f"The choice is **{c.title}** (`{c.phase}`): {verdict(ms, c).removeprefix('✅ CHOSEN: ')}",
            "",
        ]
        for o in ms.options:
            if o is not c:
                lines.append(f"- {o.short}: {verdict(ms, o)}")
        top = ms.top(TEST)
        if top is not None and top is not c:
            lines.append(
                f"- On test, {top.short} has the highest mean test AUC ({fmt(top.mean(TEST))} against "
                f"{fmt(c.mean(TEST))}); test does not choose."
            )
        lines.append("")
    return lines + _tables(ms) + plots_section(ms, img)
