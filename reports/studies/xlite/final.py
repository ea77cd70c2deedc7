"""Later sections of docs/xlite_experiments.md: the final model per disease, its ROC curves
and error pairs, cross-validation, teacher against student, and the failed trials.

The final model is the configuration chosen on validation, retrained on train+val: its own
validation numbers are in-sample, so the per-disease Val AUC comes from the runs that selected
it (trained on train only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from reports.markdown import table
from reports.phased import Study
from reports.plots import roc_labels
from reports.query import predictions, run_text, runs_by_id
from reports.resample import labels_of
from reports.sections import failed_section
from reports.stats import fmt

TOP_PAIRS = 5


def _mean(runs: pd.DataFrame, metric: str) -> float:
    col = f"metrics.{metric}"
    v = [float(x) for x in runs[col] if not np.isnan(float(x))] if col in runs else []
    return float(np.mean(v)) if v else float("nan")


def _avg(values: list[float]) -> float:
    v = [x for x in values if not np.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def _labels(runs: pd.DataFrame, task: str) -> list[str]:
    """Labels in head order from the saved predictions, else from the metric names."""
    pred = predictions(runs.iloc[0]) if not runs.empty else None
    if pred is not None and labels_of(pred, task):
        return labels_of(pred, task)
    prefix = f"metrics.test/{task}/auc/"
    return sorted(c[len(prefix) :] for c in runs.columns if c.startswith(prefix))


def _disease_table(runs: pd.DataFrame, val_runs: pd.DataFrame, t: str) -> list[str]:
    """Per label: train, validation and test AUC, test F1, precision and recall; the macro row."""
    labels = _labels(runs, t)
    rows = [
        [
            c,
            fmt(_mean(runs, f"best_train/{t}/auc/{c}")),
            fmt(_mean(val_runs, f"best_dev/{t}/auc/{c}")),
            *(fmt(_mean(runs, f"test/{t}/{m}/{c}")) for m in ("auc", "f1", "precision", "recall")),
        ]
        for c in labels
    ]
    macro = [
        fmt(_avg([_mean(runs, f"test/{t}/{m}/{c}") for c in labels])) for m in ("f1", "precision", "recall")
    ]
    rows.append(
        [
            "**MACRO AVG**",
            fmt(_mean(runs, f"best_train/{t}/auc")),
            fmt(_mean(val_runs, f"best_dev/{t}/auc")),
            fmt(_mean(runs, f"test/{t}/auc")),
            *macro,
        ]
    )
    head = ["Disease", "Train AUC", "Val AUC", "Test AUC", "Test F1", "Precision", "Recall"]
    return table(head, rows, "lrrrrrr") + [""]


def final_section(study: Study, img: Path) -> list[str]:
    """The final model per disease, its ROC curves and most confused label pairs."""
    final = next((r for r in study.phase("final") if r.ok), None)
    chosen, how = study.selected()
    title = f"### Phase 3: final model ({final.exp_id})" if final else "### Phase 3: final model"
    lines = [title, ""]
    if chosen is None and final is None:
        return lines + ["No configuration FINISHED: no final model.", ""]
    val_runs = study.selector_runs()
    if final is not None:
        who = chosen.describe() if chosen is not None else "the configuration chosen on validation"
        lines += [f"{final.exp_id} retrains {who} ({how}) on train+val and is evaluated once on test.", ""]
        runs, src = final.runs, final.exp_id
    else:
        lines += [
            f"No `final` phase in this sweep: the table shows {chosen.describe()} itself ({how}), "
            "trained on train only, so its validation numbers are out-of-sample.",
            "",
        ]
        runs, src = chosen.runs, chosen.exp_id
        val_runs = chosen.runs
    for t in study.tasks:
        if len(study.tasks) > 1:
            lines += [f"#### Task `{t}`", ""]
        lines += _disease_table(runs, val_runs, t)
    sel = ", ".join(f"`{r}`" for r in val_runs["run_id"]) if not val_runs.empty else "none"
    lines += [
        f"Train and Test: {src}"
        + (" (its training data is train+val)" if final is not None else "")
        + f". Val: the run(s) that selected the configuration ({sel}), trained on train only"
        + (
            f"; {src}'s own validation numbers are in-sample (val is in its training data) and are not shown"
            if final
            else ""
        )
        + ". n/a: only one class of the label in that split (AUC undefined). Test F1, precision and recall "
        "use the per-label thresholds the run tuned on its validation split"
        + (", which the refit also trained on" if final else "")
        + f"; the macro F1 at 0.5 is {fmt(_avg([_mean(runs, f'test/{t}/f1') for t in study.tasks]))}.",
        "",
    ]
    first = runs.iloc[0]
    pred = predictions(first)
    if pred is not None:
        for t in study.tasks:
            rel, skipped = roc_labels(
                pred,
                t,
                f"{study.sweep.dataset}: {src} test ROC ({t}, seed {first.get('params.seed', '?')})",
                img / f"{study.sweep.dataset}_xlite_roc_{t}.png",
            )
            lines += [f"![ROC curves per label of {src}]({rel})", ""]
            if skipped:
                lines += [f"No ROC curve for {', '.join(skipped)}: one class only in the test set.", ""]
    return lines + _errors(first, study.tasks, src)


def _errors(run: pd.Series, tasks: list[str], src: str) -> list[str]:
    lines = ["#### Error analysis", ""]
    for t in tasks:
        text = run_text(run, f"errors/{t}_confused_pairs.json")
        if text is None:
            lines += [f"No `errors/{t}_confused_pairs.json` saved by {src}.", ""]
            continue
        pairs = json.loads(text)[:TOP_PAIRS]
        if not pairs:
            lines += [f"{src} ({t}): no image with both a false positive and a false negative.", ""]
            continue
        lines += [
            f"Most frequent (false positive, false negative) label pairs in the same test image, {src} "
            f"(`{t}`, seed {run.get('params.seed', '?')}, tuned thresholds): the model saw the first where the "
            "finding was the second.",
            "",
            *table(["False positive (predicted)", "False negative (missed)", "Images"], pairs, "llr"),
            "",
        ]
    return lines


def cv_section(study: Study) -> list[str]:
    """The chosen configuration over the folds: how much its AUC moves with the split."""
    rows = sorted(study.phase("cv"), key=lambda r: (r.exp_id, r.fold if r.fold is not None else -1))
    if not rows:
        return []
    ref = next((r for r in rows if r.ok), rows[0])
    done = [r for r in rows if r.ok]
    cols = [[r.macro("best_train") for r in done], [r.val for r in done], [r.test for r in done]]
    cells = [
        [
            r.fold,
            *([fmt(r.macro("best_train")), fmt(r.val), fmt(r.test)] if r.ok else ["-"] * 3),
            "" if r.ok else "failed: " + r.missing()[0][1],
        ]
        for r in rows
    ]
    means = [fmt(float(np.mean(c))) if c else "n/a" for c in cols]
    stds = [fmt(float(np.std(c, ddof=1))) if len(c) >= 2 else "n/a" for c in cols]
    over = f"over {len(done)} of {len(rows)} folds" if len(done) < len(rows) else f"over {len(done)} folds"
    cells += [["**Mean**", *means, over], ["**Std**", *stds, "sample std (n − 1)"]]
    return [
        "### Cross-validation",
        "",
        f"{ref.describe()}: {len(rows)}-fold cross-validation over train+val, test held "
        "out. Train: the training folds (restored checkpoint); Val: the held-out fold.",
        "",
        *table(["Fold", "Train AUC", "Val AUC", "Test AUC", "Notes"], cells, "lrrr"),
        "",
    ]


def teacher_section(study: Study) -> list[str]:
    """The chosen student against its teacher: AUC kept, size and latency saved."""
    final = next((r for r in study.phase("final") if r.ok), None) or study.selected()[0]
    if final is None or "tags.teacher_run_id" not in final.runs:
        return []
    teachers = runs_by_id([t for t in final.runs["tags.teacher_run_id"].dropna() if t])
    lines = ["### Teacher vs student", ""]
    if teachers.empty:
        return lines + [f"The teacher run of {final.exp_id} is not in the store.", ""]
    auc = _avg([_mean(teachers, f"test/{t}/auc") for t in study.tasks])
    ids = ", ".join(f"`{r}`" for r in teachers["run_id"])
    size, lat = _mean(teachers, "size_mb"), _mean(teachers, "latency_ms")
    lines.append(
        f"Teacher ({ids}): test macro AUC {fmt(auc)}, {fmt(size, 2)} MB, {fmt(lat, 2)} ms. Chosen student "
        f"{final.exp_id}: {fmt(final.test)}, {fmt(final.mean('size_mb'), 2)} MB, {fmt(final.mean('latency_ms'), 2)} ms. "
        f"AUC delta (student − teacher): {final.test - auc:+.4f}"
        + (f"; the student keeps {100 * final.test / auc:.1f} % of the teacher's AUC." if auc > 0 else ".")
    )
    return lines + [""]


def failed(study: Study) -> list[str]:
    """The trials without a FINISHED run, by phase, experiment, seed and fold."""
    missing = [(r, t, why) for r in study.rows for t, why in r.missing()]
    rows = [
        [
            r.phase,
            r.exp_id,
            t.get("seed", ""),
            "" if r.fold is None else str(r.fold),
            t.get("status", ""),
            why[:160].replace("|", "/"),
        ]
        for r, t, why in missing
    ]
    after = [
        "",
        "An experiment with a failed seed shows, and competes with, the mean over its FINISHED seeds.",
    ]
    return failed_section(
        ["Phase", "Exp", "Seed", "Fold", "Status", "Reason"],
        rows,
        "Not counted anywhere above (no mean, no choice):",
        after if any(r.ok for r, _, _ in missing) else [],  # a seed failed, others FINISHED
    )
