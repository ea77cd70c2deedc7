"""The facts docs/mil_loss_analysis.md reads from the runs besides the decision: the dataset
context (data/* metrics, test predictions), the teachers of a distilled option and the failed
trials."""

from __future__ import annotations

import math

import numpy as np

from reports.markdown import cell
from reports.query import predictions, runs_by_id
from reports.sections import failed_section
from reports.stats import mean_std
from reports.studies.mil.data import MilStudy, Option, fold_metrics


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
        peak = o.runs_max("peak_rss_mb")
        parts.append(f"{o.short} {peak:,.0f} MB" if not math.isnan(peak) else f"{o.short} not recorded")
    return ", ".join(parts) or "not recorded"


def context_section(ms: MilStudy) -> list[str]:
    """The data behind the choice: class counts and imbalance, bag sizes, folds, memory, test bags."""
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
        f"- Peak memory of a trial (its process's high-water RSS, the largest over the fold runs): {_memory(ms)}",
    ]
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


def failed(ms: MilStudy) -> list[str]:
    """The trials without a FINISHED run, by configuration, fold and seed."""
    rows = [
        [o.short, f.fold, t.get("seed", ""), t.get("status", ""), cell(why)]
        for o in ms.options
        for f in o.folds
        for t, why in f.failures
    ]
    return failed_section(
        ["Configuration", "Fold", "Seed", "Status", "Reason"],
        rows,
        "Each counts as an unstable fold above (rule 6); none enters a mean.",
    )
