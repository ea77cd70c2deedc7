"""docs/brats_models.md: seed 002's three tumour-grading models and their ensemble, from MLflow.

Every number is from the runs: validation = each fold model's held-out fold (the restored best
checkpoint), test = the held-out test patients, the same for every fold model. The best single
model and the best ensemble are chosen on mean validation AUC, never on test.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from reports.brats_data import LEVEL, BratsStudy, Model, paired
from reports.query import predictions
from reports.stats import fmt, mean_std
from reports.xlite_plots import roc_figure

COLUMNS = [
    ("AUC", "auc"),
    ("Accuracy", "acc"),
    ("Balanced accuracy", "balanced_acc"),
    ("F1", "f1"),
    ("Sensitivity", "sensitivity"),
    ("Specificity", "specificity"),
]


def summary_section(s: BratsStudy) -> list[str]:
    t = s.task
    head = " | ".join(name for name, _ in COLUMNS)
    lines = [
        "## Cross-validation summary",
        "",
        "Validation columns: mean ± std over the fold models, each on its own held-out fold. Test: the "
        "held-out test patients, mean ± std over the fold models.",
        "",
        f"| Model | Folds | {head} | Test AUC | Test balanced accuracy |",
        "|---|---:|" + "---:|" * (len(COLUMNS) + 2),
    ]
    for m in s.models:
        cells = [mean_std(m.values(f"best_dev/{t}/{k}")) for _, k in COLUMNS]
        test = [mean_std(m.values(f"test/{t}/{k}")) for k in ("auc", "balanced_acc")]
        lines.append(
            f"| {m.title} | {len(m.per_fold(f'best_dev/{t}/auc'))} | " + " | ".join(cells + test) + " |"
        )
    return lines + [""]


def decision_section(s: BratsStudy) -> list[str]:
    t = s.task
    single, ens = s.best(s.singles()), s.best(s.ensembles())
    lines = ["## Does the ensemble beat the best single model?", ""]
    if single is None or ens is None:
        return lines + ["Not measurable: no FINISHED single model or no ensemble run.", ""]
    val, test = paired(ens, single, f"best_dev/{t}/auc"), paired(ens, single, f"test/{t}/auc")
    lines.append(
        f"Best single model on validation: **{single.title}** (mean AUC {fmt(single.mean(f'best_dev/{t}/auc'))}); "
        f"best ensemble: **{ens.title}** ({fmt(ens.mean(f'best_dev/{t}/auc'))})."
    )
    if val is None:
        return lines + ["", "Fewer than two shared folds: no paired comparison.", ""]
    lines += [
        "",
        f"- Validation AUC, ensemble minus single, paired by fold (folds {', '.join(map(str, val.folds))}): "
        f"{val.diff:+.4f}, {LEVEL:.0%} t-interval [{val.lo:+.4f}, {val.hi:+.4f}].",
    ]
    if test is not None:
        lines.append(
            f"- Test AUC, the same fold models on the test patients: {test.diff:+.4f} "
            f"[{test.lo:+.4f}, {test.hi:+.4f}] (shown, not used to choose)."
        )
    lines.append("")
    if val.lo > 0:
        verdict = "The ensemble beats the best single model: its validation AUC is higher beyond noise (the interval lies above 0)."
    elif val.hi < 0:
        verdict = "**The ensemble does not beat the best single model**: it is lower beyond noise (the interval lies below 0)."
    else:
        verdict = (
            "**The ensemble does not beat the best single model**: the difference is within noise (the interval "
            "contains 0)."
        )
    lines += [verdict, ""]
    if ens.key in ("ensemble_mean", "ensemble_auc_weighted"):
        lines += [
            "The weighted ensemble's weights come from the same validation folds it is scored on; stacking is "
            "scored out-of-fold inside validation. Test is untouched by both.",
            "",
        ]
    return lines


def cost_section(s: BratsStudy) -> list[str]:
    lines = [
        "## Parameters, inference time and memory",
        "",
        "| Model | Parameters (M) | Inference per patient (ms, batch 1) | Peak memory of a trial (MB) |",
        "|---|---:|---:|---:|",
    ]
    for m in s.singles():
        params = m.mean("params")
        lines.append(
            f"| {m.title} | {fmt(params / 1e6, 2) if not math.isnan(params) else 'n/a'} | "
            f"{fmt(m.mean('latency_ms'), 2)} | {fmt(m.runs_max('peak_rss_mb'), 0)} |"
        )
    return lines + [
        "",
        "Latency is the median of timed batch-1 passes inside a sweep, with other trials sharing the cores: "
        "compare it between models of one sweep, not with other machines. Peak memory is the trial process's "
        "high-water RSS (machine-wide memory over time is in each run's MLflow system metrics).",
        "",
    ]


def _test_scores(m: Model, task: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(test labels, positive-class probability averaged over the fold models) or None."""
    frames = [predictions(r.runs.iloc[0]) for r in m.folds if r.ok]
    frames = [f for f in frames if f is not None]
    if not frames:
        return None
    pos = [c for c in frames[0].columns if c.startswith(f"{task}/p/")][-1]
    y = frames[0][f"{task}/label"].to_numpy(int)
    return y, np.mean([f[pos].to_numpy(float) for f in frames], axis=0)


def roc_section(s: BratsStudy, img: Path) -> list[str]:
    curves = []
    for m in s.models:
        got = _test_scores(m, s.task)
        if got is not None and len(np.unique(got[0])) == 2:
            curves.append((m.title, got[0], got[1]))
    lines = ["## ROC on the test patients", ""]
    if not curves:
        return lines + ["No test predictions with both grades: no ROC curve.", ""]
    path = img / f"{s.sweep.dataset}_brats_roc.png"
    link = roc_figure(
        curves,
        f"{s.sweep.dataset}: test ROC (fold models' mean probability)",
        path,
        "model (AUC)",
        (6, 4.5),
        7,
    )
    return lines + [
        f"![ROC of every model and ensemble]({link})",
        "",
        "Each curve scores the test patients with the mean positive-grade probability of the model's fold "
        "models (AUC in the legend).",
        "",
    ]


def fold_section(s: BratsStudy) -> list[str]:
    t = s.task
    folds = sorted({f for m in s.models for f in m.per_fold(f"best_dev/{t}/auc")})
    lines = [
        "## Per fold",
        "",
        "Validation AUC / test AUC of each fold model.",
        "",
        "| Model | " + " | ".join(f"Fold {f}" for f in folds) + " |",
        "|---|" + "---|" * len(folds),
    ]
    for m in s.models:
        val, test = m.per_fold(f"best_dev/{t}/auc"), m.per_fold(f"test/{t}/auc")
        cells = [
            f"{fmt(val[f]) if f in val else 'n/a'} / {fmt(test[f]) if f in test else 'n/a'}" for f in folds
        ]
        lines.append(f"| {m.title} | " + " | ".join(cells) + " |")
    return lines + [""]


def document(studies: list[BratsStudy], img: Path) -> list[str]:
    lines = ["# Tumour grading: DSMIL, ResNet-3D, Swin-3D and their ensemble (seed 002)", ""]
    for s in studies:
        lines += [
            f"# {s.sweep.dataset}: sweep `{s.sweep.run_id}` ({s.sweep.start_time})",
            "",
            "The three models share the patients, the 5 patient-level stratified folds, the test hold-out, the "
            "loss strategy (CE + weighted sampler) and the metrics.json keys. The 3-D models are trained from "
            "scratch: no pretrained 3-D weights exist on this project's package index. Choices are made on "
            "validation, never on test.",
            "",
        ]
        lines += (
            summary_section(s) + decision_section(s) + cost_section(s) + roc_section(s, img) + fold_section(s)
        )
    return lines
