"""What docs/mil_loss_analysis.md shows beside the decision: its figures, written byte-for-byte
reproducibly (reports.plots.save): validation AUC per epoch (one panel per configuration, one
line per fold) and the chosen option's test ROC curves (one line per fold model); and the facts
read from the runs: the dataset context (data/* metrics, test predictions), the teachers and
the failed trials."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from reports.mil_data import MilStudy, Option, cell, fold_metrics
from reports.plots import figure, save
from reports.query import predictions, runs_by_id
from reports.stats import mean_std
from reports.xlite_plots import roc_figure
from reports.xlite_stats import weighted_auc


def auc_curves(panels: list[tuple[str, dict[int, dict[int, float]]]], title: str, path: Path) -> str:
    """`panels`: (name, {fold: {epoch: validation AUC}}) per configuration, two panels a row."""
    from matplotlib.ticker import MaxNLocator

    cols = min(len(panels), 2)
    rows = math.ceil(len(panels) / cols)
    fig, ax = figure(5 * cols, 3 * rows)
    ax.remove()
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for a, (name, folds) in zip(axes, panels, strict=False):
        for fold in sorted(folds):
            steps = sorted(folds[fold])
            a.plot(steps, [folds[fold][s] for s in steps], marker=".", linewidth=1, label=f"fold {fold}")
        a.set_ylim(0, 1.02)  # the same scale in every panel: swings compare across options
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_title(name, fontsize=8)
        a.set_xlabel("epoch", fontsize=7)
        a.set_ylabel("validation AUC", fontsize=7)
        if folds:
            a.legend(fontsize=6, loc="lower right")
        else:
            a.text(0.5, 0.5, "no per-epoch history", ha="center", fontsize=7, transform=a.transAxes)
    for a in axes[len(panels) :]:
        a.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def roc_folds(curves: list[tuple[int, np.ndarray, np.ndarray]], title: str, path: Path) -> str:
    """`curves`: (fold, 0/1 labels, positive-class scores) per fold model on the same test bags."""
    named = [(f"fold {fold}", y, p) for fold, y, p in curves]
    return roc_figure(named, title, path, "fold model (test AUC)", (5.5, 4.5), 7)


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


def _spread(values: list[float], digits: str = "g", unit: str = "") -> str:
    """One value, or the range over the fold runs when they differ; 'not recorded' without any."""
    v = sorted({float(x) for x in values if not math.isnan(float(x))})
    if not v:
        return "not recorded"
    return (
        f"{v[0]:{digits}}{unit}"
        if len(v) == 1
        else f"{v[0]:{digits}}–{v[-1]:{digits}}{unit} (over the fold runs)"
    )


def _memory(ms: MilStudy) -> str:
    """Per option, the largest `peak_rss_mb` of its fold runs (machine-wide memory over time is
    in each run's MLflow system metrics)."""
    parts = []
    for o in ms.options:
        runs = [f.row.runs for f in o.folds if f.ok and "metrics.peak_rss_mb" in f.row.runs]
        values = [float(x) for r in runs for x in r["metrics.peak_rss_mb"] if not math.isnan(float(x))]
        parts.append(f"{o.short} {max(values):,.0f} MB" if values else f"{o.short} not recorded")
    return ", ".join(parts) or "not recorded"


def context_section(ms: MilStudy) -> list[str]:
    runs = ms.sweep.runs
    col = lambda m: [float(x) for x in runs[f"metrics.{m}"]] if f"metrics.{m}" in runs else []  # noqa: E731
    bags = sorted(
        c[len("metrics.data/train_bags/") :] for c in runs if c.startswith("metrics.data/train_bags/")
    )
    counts = np.array([col(f"data/train_bags/{b}") for b in bags]) if bags else np.empty((0, 0))
    ratio = list(counts.max(0) / counts.min(0)) if len(bags) > 1 else []
    lo, hi = [x for x in col("data/instances_min") if not math.isnan(x)], col("data/instances_max")
    hi = [x for x in hi if not math.isnan(x)]
    folds = sorted({f.fold for o in ms.options for f in o.folds})
    per_class = ", ".join(f"{b} {_spread(col('data/train_bags/' + b))}" for b in bags) or "not recorded"
    lines = [
        "### Context",
        "",
        f"- Training bags per class: {per_class}",
        f"- Imbalance ratio (largest / smallest class): {_spread(ratio, '.2f', ':1')}",
        f"- Instances (slices) per bag: median {_spread(col('data/instances_median'))}, range "
        + (f"{min(lo):g}–{max(hi):g}" if lo and hi else "not recorded"),
        f"- Folds: {len(folds)} ({', '.join(map(str, folds))}), stratified at patient level over train+dev; each "
        "fold model is validated on its held-out fold.",
    ]
    lines.append(
        f"- Peak memory of a trial (its process's high-water RSS, the largest over the fold runs): {_memory(ms)}"
    )
    first = next((f for o in ms.options for f in o.folds if f.ok), None)
    pred = predictions(first.row.first()) if first is not None else None
    if pred is not None and f"{ms.task}/label" in pred:
        names = fold_metrics(first).get("classes") or [
            c.split("/")[-1] for c in pred if c.startswith(f"{ms.task}/p/")
        ]
        n = pred[f"{ms.task}/label"].value_counts()
        per = ", ".join(f"{names[i] if i < len(names) else i} {int(n.get(i, 0))}" for i in range(len(names)))
        lines.append(f"- Test: {len(pred)} bags held out ({per}), the same bags for every fold model.")
    else:
        lines.append("- Test: held out; no saved test predictions to count its bags.")
    return lines + [""]


def teacher_line(o: Option, task: str) -> list[str]:
    """The test AUC of the teacher runs (tag teacher_run_id) of a distilled option, if any."""
    runs = [f.row.runs for f in o.folds if f.ok and "tags.teacher_run_id" in f.row.runs]
    ids = sorted({str(t) for r in runs for t in r["tags.teacher_run_id"].dropna() if t})
    if o.param("loss.name") in ("", "none") or not ids:
        return []
    found, col = runs_by_id(ids), f"metrics.test/{task}/auc"
    auc = [float(x) for x in found[col]] if col in found else []
    return [f"Teacher run(s) ({len(found)} of {len(ids)} in the store): test AUC {mean_std(auc)}.", ""]


def failed_section(ms: MilStudy) -> list[str]:
    rows = [(o, f, t, why) for o in ms.options for f in o.folds for t, why in f.failures]
    lines = ["### Failed or stopped trials", ""]
    if not rows:
        return lines + ["None: every trial has a FINISHED run.", ""]
    lines += [
        "Each counts as an unstable fold above (rule 6); none enters a mean.",
        "",
        "| Configuration | Fold | Seed | Status | Reason |",
        "|---|---|---|---|---|",
    ]
    for o, f, t, why in rows:
        lines.append(f"| {o.short} | {f.fold} | {t.get('seed', '')} | {t.get('status', '')} | {cell(why)} |")
    return lines + [""]
