"""docs/brats_models.md: seed 002's three tumour-grading models and their ensemble (sweeps/brats.yaml),
one sweep per dataset (the latest, or the one --sweep-id names).

Every number is from the runs: validation = each fold model's held-out fold (the restored best
checkpoint), test = the held-out test patients, the same for every fold model. One configuration
per phase (DSMIL, ResNet-3D, Swin-3D, the 3-D-teacher KD configuration) and per ensemble method,
each over its folds; ensemble runs are found through the parent's ensembles.json. The best single
model and the best ensemble are chosen on mean validation AUC, never on test. Its runs are not in
docs/results.csv.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reports.groups import Folds, Group
from reports.markdown import table
from reports.phased import load as load_study
from reports.plots import roc_figure
from reports.query import Sweep, predictions, runs_by_id, sweep_text
from reports.registry import Context, Document, register
from reports.stats import Diff, Verdicts, fmt, mean_std, paired_folds
from reports.studies.mil.objective import objective_line

TITLES = {
    "dsmil": "DSMIL",
    "resnet3d": "ResNet-3D",
    "swin3d": "Swin-3D",
    "kd_resnet3d_to_dsmil": "DSMIL taught by ResNet-3D (KD)",
    "ensemble_mean": "Ensemble (mean)",
    "ensemble_auc_weighted": "Ensemble (validation-AUC weighted)",
    "ensemble_stacking": "Ensemble (stacking on validation)",
}
LEVEL = 0.95
COLUMNS = [
    ("AUC", "auc"),
    ("Accuracy", "acc"),
    ("Balanced accuracy", "balanced_acc"),
    ("F1", "f1"),
    ("Sensitivity", "sensitivity"),
    ("Specificity", "specificity"),
]
ENSEMBLE_VERDICT = Verdicts(
    "The ensemble beats the best single model: its validation AUC is higher beyond noise (the interval lies above 0).",
    "**The ensemble does not beat the best single model**: it is lower beyond noise (the interval lies below 0).",
    "**The ensemble does not beat the best single model**: the difference is within noise (the interval "
    "contains 0).",
)


def title(m: Folds) -> str:
    """The heading a model or ensemble method has in the tables."""
    return TITLES.get(m.key, m.key)


def is_ensemble(m: Folds) -> bool:
    """Ensemble methods compete with each other, the models with each other."""
    return m.key.startswith("ensemble_")


def paired(a: Folds, b: Folds, metric: str) -> Diff | None:
    """a - b of `metric` paired by fold, with its 95 % t-interval over the folds."""
    return paired_folds(a.per_fold(metric), b.per_fold(metric), LEVEL)


@dataclass
class BratsStudy:
    sweep: Sweep
    task: str
    models: list[Folds]  # the phases in run order, then the ensemble methods

    def singles(self) -> list[Folds]:
        return [m for m in self.models if not is_ensemble(m)]

    def ensembles(self) -> list[Folds]:
        return [m for m in self.models if is_ensemble(m)]

    def best(self, models: list[Folds]) -> Folds | None:
        """The highest mean validation AUC (chosen on validation, never test)."""
        ok = [m for m in models if not math.isnan(m.mean(f"best_dev/{self.task}/auc"))]
        return max(ok, key=lambda m: m.mean(f"best_dev/{self.task}/auc"), default=None)


def load(sweep: Sweep) -> BratsStudy:
    """The models (phases) and ensemble methods of one BraTS sweep, each over its folds."""
    study = load_study(sweep)
    task = study.tasks[0] if study.tasks else "grade"
    by_key: dict[str, list[Group]] = {}
    for row in study.rows:
        by_key.setdefault(row.phase, []).append(row)
    text = sweep_text(sweep, "ensembles.json")
    records = json.loads(text) if text else []
    frame = runs_by_id([r["run_id"] for r in records if r.get("run_id")])
    for rec in records:
        mine = frame[frame["run_id"] == rec.get("run_id")] if not frame.empty else frame
        trial = {"run_id": rec.get("run_id"), "status": rec.get("status"), "label": rec.get("method")}
        key, method = f"ensemble_{rec['method']}", rec["method"]
        by_key.setdefault(key, []).append(
            Group(
                method,
                mine.reset_index(drop=True),
                phase=key,
                exp_id=method,
                fold=rec.get("fold"),
                trials=[trial],
                tasks=[task],
            )
        )
    models = [Folds(k, sorted(v, key=lambda r: r.fold or 0)) for k, v in by_key.items()]
    return BratsStudy(sweep, task, models)


def summary_section(s: BratsStudy) -> list[str]:
    """Every model and ensemble over its folds: validation metrics and test AUC."""
    t = s.task
    rows = [
        [
            title(m),
            len(m.per_fold(f"best_dev/{t}/auc")),
            *(mean_std(m.values(f"best_dev/{t}/{k}")) for _, k in COLUMNS),
            *(mean_std(m.values(f"test/{t}/{k}")) for k in ("auc", "balanced_acc")),
        ]
        for m in s.models
    ]
    head = ["Model", "Folds", *(name for name, _ in COLUMNS), "Test AUC", "Test balanced accuracy"]
    return [
        "## Cross-validation summary",
        "",
        "Validation columns: mean ± std over the fold models, each on its own held-out fold. Test: the "
        "held-out test patients, mean ± std over the fold models.",
        "",
        *table(head, rows, "l" + "r" * (len(COLUMNS) + 3)),
        "",
        *objective_line([(title(m), m) for m in s.singles()]),  # the DSMIL models only
    ]


def decision_section(s: BratsStudy) -> list[str]:
    """The best ensemble against the best single model (both chosen on validation), paired by fold."""
    t = s.task
    single, ens = s.best(s.singles()), s.best(s.ensembles())
    lines = ["## Does the ensemble beat the best single model?", ""]
    if single is None or ens is None:
        return lines + ["Not measurable: no FINISHED single model or no ensemble run.", ""]
    val, test = paired(ens, single, f"best_dev/{t}/auc"), paired(ens, single, f"test/{t}/auc")
    lines.append(
        f"Best single model on validation: **{title(single)}** (mean AUC {fmt(single.mean(f'best_dev/{t}/auc'))}); "
        f"best ensemble: **{title(ens)}** ({fmt(ens.mean(f'best_dev/{t}/auc'))})."
    )
    if val is None:
        return lines + ["", "Fewer than two shared folds: no paired comparison.", ""]
    lines += [
        "",
        f"- Validation AUC, ensemble minus single, paired by fold (folds {', '.join(map(str, val.folds))}): "
        f"{val.diff:+.4f}, {LEVEL:.0%} t-interval {val.interval()}.",
    ]
    if test is not None:
        lines.append(
            f"- Test AUC, the same fold models on the test patients: {test.diff:+.4f} "
            f"{test.interval()} (shown, not used to choose)."
        )
    lines += ["", val.verdict(ENSEMBLE_VERDICT), ""]
    if ens.key in ("ensemble_mean", "ensemble_auc_weighted"):
        lines += [
            "The weighted ensemble's weights come from the same validation folds it is scored on; stacking is "
            "scored out-of-fold inside validation. Test is untouched by both.",
            "",
        ]
    return lines


def cost_section(s: BratsStudy) -> list[str]:
    """What each model costs to run: parameters, latency, peak memory."""
    rows = []
    for m in s.singles():
        params = m.mean("params")
        rows.append(
            [
                title(m),
                fmt(params / 1e6, 2) if not math.isnan(params) else "n/a",
                fmt(m.mean("latency_ms"), 2),
                fmt(m.runs_max("peak_rss_mb"), 0),
            ]
        )
    head = ["Model", "Parameters (M)", "Inference per patient (ms, batch 1)", "Peak memory of a trial (MB)"]
    return [
        "## Parameters, inference time and memory",
        "",
        *table(head, rows, "lrrr"),
        "",
        "Latency is the median of timed batch-1 passes inside a sweep, with other trials sharing the cores: "
        "compare it between models of one sweep, not with other machines. Peak memory is the trial process's "
        "high-water RSS (machine-wide memory over time is in each run's MLflow system metrics).",
        "",
    ]


def _test_scores(m: Folds, task: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(test labels, positive-class probability averaged over the fold models) or None."""
    frames = [predictions(r.runs.iloc[0]) for r in m.groups if r.ok]
    frames = [f for f in frames if f is not None]
    if not frames:
        return None
    pos = [c for c in frames[0].columns if c.startswith(f"{task}/p/")][-1]
    y = frames[0][f"{task}/label"].to_numpy(int)
    return y, np.mean([f[pos].to_numpy(float) for f in frames], axis=0)


def roc_section(s: BratsStudy, img: Path) -> list[str]:
    """One ROC curve per model on the test patients (its fold models' mean probability)."""
    curves = []
    for m in s.models:
        got = _test_scores(m, s.task)
        if got is not None and len(np.unique(got[0])) == 2:
            curves.append((title(m), got[0], got[1]))
    lines = ["## ROC on the test patients", ""]
    if not curves:
        return lines + ["No test predictions with both grades: no ROC curve.", ""]
    link = roc_figure(
        curves,
        f"{s.sweep.dataset}: test ROC (fold models' mean probability)",
        img / f"{s.sweep.dataset}_brats_roc.png",
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
    """Validation and test AUC per fold: where the means come from."""
    t = s.task
    folds = sorted({f for m in s.models for f in m.per_fold(f"best_dev/{t}/auc")})
    rows = []
    for m in s.models:
        val, test = m.per_fold(f"best_dev/{t}/auc"), m.per_fold(f"test/{t}/auc")
        cells = [
            f"{fmt(val[f]) if f in val else 'n/a'} / {fmt(test[f]) if f in test else 'n/a'}" for f in folds
        ]
        rows.append([title(m), *cells])
    return [
        "## Per fold",
        "",
        "Validation AUC / test AUC of each fold model.",
        "",
        *table(["Model", *(f"Fold {f}" for f in folds)], rows),
        "",
    ]


@register("brats", order=70, in_results_csv=False, per_dataset=True)
def report(sweeps: list[Sweep], ctx: Context) -> list[Document]:
    """One document for the BraTS sweeps, a part per dataset."""
    lines = ["# Tumour grading: DSMIL, ResNet-3D, Swin-3D and their ensemble (seed 002)", ""]
    for s in (load(sw) for sw in sweeps):
        lines += [
            f"# {s.sweep.dataset}: sweep `{s.sweep.run_id}` ({s.sweep.start_time})",
            "",
            "The three models share the patients, the 5 patient-level stratified folds, the test hold-out, the "
            "loss strategy (CE + weighted sampler) and the metrics.json keys. The 3-D models are trained from "
            "scratch: no pretrained 3-D weights exist on this project's package index. Choices are made on "
            "validation, never on test.",
            "",
        ]
        lines += summary_section(s) + decision_section(s) + cost_section(s) + roc_section(s, ctx.img)
        lines += fold_section(s)
    return [Document("brats_models.md", sweeps, lines)]
