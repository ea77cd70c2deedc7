"""docs/mil_loss_analysis.md (seed 002) from a tmp MLflow store of hand-made runs that follow the MIL
study driver's contract: three loss options and bag-level KD, 5 folds each, per-epoch histories,
stability metrics, metrics.json and test predictions. LDAM + DRW is made unstable (AUC swings of
0.6, a loss of 150, a non-finite fold), Focal is stable but best on test only, KD has the best
validation AUC but is no candidate: the document must choose CE + WeightedRandomSampler."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from test_report_runs import toy_experiment

from support import sqlite_store

TASK = "grade"
CLASSES = ["HGG", "LGG"]  # positive class HGG: index 0, not the default 1
N = 40
E = 6
VAL = {
    "ldam_drw": [0.85, 0.86, 0.84, 0.85, None],
    "focal": [0.78, 0.76, 0.77, 0.79, 0.75],
    "ce_weighted": [0.80, 0.82, 0.78, 0.81, 0.79],
    "kd": [0.83, 0.84, 0.82, 0.83, None],
}
TEST = {
    "ldam_drw": [0.70, 0.72, 0.71, 0.73, None],
    "focal": [0.80, 0.81, 0.79, 0.80, 0.80],
    "ce_weighted": [0.76, 0.75, 0.77, 0.76, 0.76],
    "kd": [0.78, 0.79, 0.77, 0.78, None],
}
PARAMS = {
    "ldam_drw": ("ldam_drw", "none", "none"),
    "focal": ("focal", "none", "none"),
    "ce_weighted": ("ce", "weighted", "none"),
    "kd": ("ce", "weighted", "vanilla"),
}
IDS = {"ce_weighted": "CE_WRS", "focal": "FOCAL", "ldam_drw": "LDAM_DRW", "kd": "KD"}


def labels() -> np.ndarray:
    return np.array([0] * 29 + [1] * 11)  # 29 HGG, 11 LGG


def preds_csv(signal: float, fold: int) -> str:
    y = labels()
    p_hgg = 1 / (1 + np.exp(-(signal * (2 * (y == 0) - 1) + np.random.default_rng(fold + 1).normal(size=N))))
    rows = [[i, y[i], int(p_hgg[i] < 0.5), f"{p_hgg[i]:.6f}", f"{1 - p_hgg[i]:.6f}"] for i in range(N)]
    buf = io.StringIO()
    cols = ["index", f"{TASK}/label", f"{TASK}/pred", f"{TASK}/p/HGG", f"{TASK}/p/LGG"]
    csv.writer(buf, lineterminator="\n").writerows([cols, *rows])
    return buf.getvalue()


def curves(phase: str, fold: int, val: float) -> tuple[list[float], list[float]]:
    """(dev AUC, train loss) per epoch: smooth, except LDAM + DRW's fold 0 (swings) and 1 (150)."""
    dev = [val - 0.1, val - 0.05, val - 0.02, val, val - 0.01, val - 0.005]
    loss = [0.7, 0.6, 0.5, 0.45, 0.42, 0.4]
    if phase == "ldam_drw" and fold == 0:
        dev = [0.3, 0.9, 0.3, 0.85, 0.5, 0.6]
    if phase == "ldam_drw" and fold == 1:
        loss = [0.7, 150.0, 3.0, 0.5, 0.4, 0.4]
    return dev, loss


def student(c, exp, parent: str, phase: str, fold: int, teacher: str, status: str = "FINISHED") -> dict:
    """A student run as the driver logs it; its trials.json entry."""
    from mlflow.entities import Metric, Param

    val, test = VAL[phase][fold] or 0.5, TEST[phase][fold] or 0.5
    tags = {"stage": "student", "phase": phase, "exp_id": IDS[phase], "fold": str(fold), "seed": "0"}
    tags |= {"tasks": TASK, "loss": PARAMS[phase][2], "sweep_hash": "hm", "mlflow.parentRunId": parent}
    tags |= {"mlflow.runName": f"brats-{phase}-f{fold}-s0", "teacher_run_id": teacher}
    rid = c.create_run(exp, tags=tags).info.run_id
    label_loss, sampler, name = PARAMS[phase]
    params = {"seed": 0, "loss.label_loss": label_loss, "train.sampler": sampler, "loss.name": name}
    params |= {"split.fold": fold, "split.folds": 5, "train.monitor": f"{TASK}/auc"}
    dev, loss = curves(phase, fold, val)
    metrics = [Metric(f"dev/{TASK}/auc", d, e, e) for e, d in enumerate(dev, 1)]
    metrics += [Metric("train/loss", v, e, e) for e, v in enumerate(loss, 1)]
    if status == "FAILED":
        c.log_batch(rid, metrics=metrics[:2], params=[Param(k, str(v)) for k, v in params.items()])
        c.set_tag(rid, "failure_reason", "NonFiniteLoss: non-finite loss at epoch 3 (ldam=inf)")
        c.set_terminated(rid, "FAILED")
        return trial(phase, fold, run_id=rid, status="FAILED")
    m = {f"best_dev/{TASK}/auc": val, f"test/{TASK}/auc": test, f"test/{TASK}/f1": test - 0.1}
    m |= {"data/train_bags/HGG": 134 + fold % 2, "data/train_bags/LGG": 48}
    m |= {"data/instances_median": 24, "data/instances_min": 8 + fold, "data/instances_max": 40}
    if not (phase == "kd" and fold == 0):  # an older driver: no stability/* metrics, history only
        d = np.array(dev)
        m |= {"stability/epochs": E, "stability/max_abs_delta_auc": float(np.abs(np.diff(d)).max())}
        m["stability/max_auc_drop"] = max(0.0, float((-np.diff(d)).max()))
        m |= {"stability/std_auc_last_half": float(d[E // 2 :].std()), "stability/nonfinite": 0}
        m |= {"stability/train_loss_min": min(loss), "stability/train_loss_max": max(loss)}
        # focal: fold 0 collapses in 2 early epochs (allowed), fold 1 in 4 of 6 (one is late)
        m["stability/collapsed_epochs"] = {("focal", 0): 2, ("focal", 1): 4}.get((phase, fold), 0)
    metrics += [Metric(k, float(v), 0, 0) for k, v in m.items()]
    c.log_batch(rid, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    c.log_text(rid, preds_csv(1.0 + fold * 0.2, fold), "predictions/test.csv")
    summary = {"split": "test", "task": TASK, "classes": CLASSES, "positive_class": "HGG", "auc": test}
    summary |= {"accuracy": 0.70 + 0.01 * fold, "balanced_accuracy": 0.65, "f1": 0.6, "sensitivity": 0.8}
    summary |= {"specificity": 0.5 + 0.05 * fold, "confusion_matrix": [[20, 9], [4, 7]]}
    c.log_text(rid, json.dumps(summary), "metrics.json")
    c.set_terminated(rid, "FINISHED")
    return trial(phase, fold, run_id=rid, dev=val, test_avg_f1=test - 0.1)


def trial(phase: str, fold: int, **kw) -> dict:
    out = {"label": f"{phase} fold={fold} seed=0", "status": "FINISHED", "dev": None, "test_avg_f1": None}
    out |= {"run_id": None, "error": None, "phase": phase, "exp_id": IDS[phase], "point": {}, "seed": 0}
    return out | {"fold": fold, "defining": ["loss.label_loss", "train.sampler"]} | kw


def fill() -> None:
    c, exp = toy_experiment()
    teacher = c.create_run(exp, tags={"stage": "teacher", "mlflow.runName": "brats-teacher"}).info.run_id
    c.log_metric(teacher, f"test/{TASK}/auc", 0.88)
    c.set_terminated(teacher, "FINISHED")
    tags = {"stage": "sweep", "study": "mil", "study_kind": "mil", "dataset": "brats-toy", "sweep_hash": "hm"}
    pid = c.create_run(exp, tags=tags).info.run_id
    trials = []
    for phase in ("ce_weighted", "focal", "ldam_drw", "kd"):
        for fold in range(5):
            if phase == "ldam_drw" and fold == 4:
                trials.append(student(c, exp, pid, phase, fold, teacher, status="FAILED"))
            elif phase == "kd" and fold == 4:  # failed before its run existed
                trials.append(trial(phase, fold, status="FAILED", error="RuntimeError: CUDA out of memory"))
            else:
                trials.append(student(c, exp, pid, phase, fold, teacher))
    phases = [{"name": p, "id": IDS[p], "best_of": [], "chosen": None} for p in IDS]
    from mlflow.entities import Param

    c.log_batch(pid, params=[Param("seeds", "[0]"), Param("metric", f"dev/{TASK}/auc")])
    c.log_text(pid, json.dumps(trials), "trials.json")
    c.log_text(pid, json.dumps(phases), "phases.json")
    c.set_terminated(pid, "FINISHED")
    # a second dataset where every trial failed before its run existed: nothing to choose
    tags |= {"dataset": "brats-none", "sweep_hash": "hn"}
    pid = c.create_run(exp, tags=tags).info.run_id
    err = "RuntimeError: CUDA out of memory"
    trials = [trial(p, f, status="FAILED", error=err) for p in ("ce_weighted", "focal") for f in range(2)]
    c.log_batch(pid, params=[Param("seeds", "[0]"), Param("metric", f"dev/{TASK}/auc")])
    c.log_text(pid, json.dumps(trials), "trials.json")
    c.set_terminated(pid, "FINISHED")


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mil")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp / "mlflow.db"))
        from reports.__main__ import build

        fill()
        build(tmp / "docs")
        yield tmp / "docs"
        build(tmp / "again")  # rebuilding gives byte-identical files
        for path in sorted(p for p in (tmp / "docs").rglob("*") if p.is_file()):
            assert path.read_bytes() == (tmp / "again" / path.relative_to(tmp / "docs")).read_bytes(), path


@pytest.fixture
def text(docs) -> str:
    return (docs / "mil_loss_analysis.md").read_text()


def test_chosen_on_validation_among_stable_options(text):
    assert text.startswith("<!-- Generated by `make report` from sqlite:///")
    assert "# Loss Function Analysis for Dual-Stream MIL" in text
    assert "**CHOSEN LOSS**: CrossEntropyLoss + WeightedRandomSampler (`ce_weighted`)" in text
    assert "- Validation AUC (held-out fold, CV mean ± std): 0.8000 ± 0.0158" in text
    assert "### Option 1: LDAM + DRW ❌ REJECTED" in text
    assert "### Option 2: Focal Loss ❌ REJECTED" in text
    assert "### Option 3: CrossEntropyLoss + WeightedRandomSampler ✅ CHOSEN" in text
    # Focal is best on test, KD best on validation: neither is chosen
    assert (
        "- On test, Focal has the highest mean test AUC (0.8000 against 0.7600); test does not choose."
        in text
    )
    assert (
        "### Bag-level KD: CE + WeightedRandomSampler with vanilla KD from a larger MIL teacher — not" in text
    )
    assert (
        "The choice is **CrossEntropyLoss + WeightedRandomSampler** (`ce_weighted`): stable (0 of 5" in text
    )
    assert (
        "**Verdict**: — not a candidate (stable: 1 of 5 folds unstable, at most 1 allowed; fold 4: FAILED"
        in text
    )
    assert "Teacher run(s) (1 of 1 in the store): test AUC 0.8800." in text


def test_unstable_verdict_names_the_rule_and_its_number(text):
    assert (
        "**Verdict**: ❌ REJECTED: unstable (3 of 5 folds unstable, at most 1 allowed): fold 0: validation AUC "
        "fell 0.6000 > 0.3 in one epoch; fold 1: train loss max 150 > 100; fold 4: FAILED: NonFiniteLoss: non-finite loss at "
        "epoch 3 (ldam=inf)." in text
    )
    assert "the instability the seed reports is reproduced here" in text
    # LDAM fold 1: smooth AUC, exploding loss
    assert (
        "| 1 | 0.8600 | 0.7200 | 0.0500 | 0.0100 | 0.0041 | 0.4 | 150 | 0 of 6 | ❌ train loss max 150 > 100 |"
        in text
    )
    # focal: 2 collapsed epochs may all be early (allowed); 4 of 6 put one in the second half
    assert "| 2 of 6 | ✅ |" in text
    assert "❌ 4 collapsed epochs > ⌊6/2⌋ = 3 (at least one in the second half) |" in text
    assert (
        "fold 0: `epochs`, `max_abs_delta_auc`, `max_auc_drop`, `nonfinite`, `std_auc_last_half`, `train_loss_max`,"
        in text
    )
    assert (
        "| 0 | 0.8300 | 0.7800 | 0.0500 | 0.0100 | 0.0041 | 0.4 | 0.7 | n/a | ✅ |" in text
    )  # KD: history only
    for n in ("LOSS_MIN", "LOSS_MAX", "MAX_DROP", "MAX_UNSTABLE_FOLDS"):
        from reports.studies.mil import data as mil_data

        assert f"{getattr(mil_data, n):g}" in text


def test_paired_interval_over_folds(text):
    from scipy.stats import t

    ce, focal = np.array(VAL["ce_weighted"]), np.array(VAL["focal"])
    d = ce - focal
    half = t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    row = f"| Focal | 0, 1, 2, 3, 4 | {d.mean():+.4f} | [{d.mean() - half:+.4f}, {d.mean() + half:+.4f}] | no: CE + WRS higher beyond noise |"
    assert row in text
    kd = ce[:4] - np.array(VAL["kd"][:4])
    assert f"| KD | 0, 1, 2, 3 | {kd.mean():+.4f} |" in text
    assert "stable (1 of 5 folds unstable, at most 1 allowed) but lower mean validation AUC by 0.0300" in text


def test_per_fold_table_cv_summary_context_and_failures(text):
    assert "| Fold | LDAM + DRW | Focal | CE + WRS | KD |" in text
    assert "| 0 | 0.8500 / 0.7000 | 0.7800 / 0.8000 | 0.8000 / 0.7600 | 0.8300 / 0.7800 |" in text
    assert "| 4 | failed | 0.7500 / 0.8000 | 0.7900 / 0.7600 | failed |" in text
    m = re.search(
        r"\| CE \+ WRS \| 5 \| 0\.7600 ± 0\.0071 \| 0\.7200 ± 0\.0158 \| 0\.6500 ± 0\.0000 \|", text
    )
    assert m, text
    assert "Positive class (sensitivity, specificity, F1): HGG." in text
    assert "- Training bags per class: HGG 134–135 (over the fold runs), LGG 48" in text
    assert "- Imbalance ratio (largest / smallest class): 2.79–2.81:1 (over the fold runs)" in text
    assert "- Instances (slices) per bag: median 24, range 8–40" in text
    assert "- Test: 40 bags held out (HGG 29, LGG 11), the same bags for every fold model." in text
    assert "| LDAM + DRW | 4 | 0 | FAILED | NonFiniteLoss: non-finite loss at epoch 3 (ldam=inf) |" in text
    assert "| KD | 4 | 0 | FAILED | RuntimeError: CUDA out of memory |" in text
    assert "## Incomplete runs" in text


def test_roc_uses_the_positive_class_of_metrics_json(text):
    from sklearn.metrics import roc_auc_score

    y = labels() == 0  # HGG, class index 0
    for fold in range(5):
        p = pd.read_csv(io.StringIO(preds_csv(1.0 + fold * 0.2, fold)))[f"{TASK}/p/HGG"]
        assert f"fold {fold} {roc_auc_score(y, p):.4f}" in text
    assert "Test ROC of CE + WRS, positive class HGG, one line per fold model" in text


def test_a_sweep_without_finished_runs_chooses_nothing(text):
    other = text[text.index("## brats-none") :]
    assert "**CHOSEN LOSS**: none: no loss option is stable by the rule below." in other
    assert "### Option 3: CrossEntropyLoss + WeightedRandomSampler ❌ REJECTED" in other
    assert "unstable (2 of 2 folds unstable, at most 1 allowed): fold 0: FAILED: RuntimeError" in other
    assert "- Training bags per class: not recorded" in other
    assert "No ROC curve: no chosen option" in other
    assert "### Option 1: LDAM + DRW — not run\n\nNo `ldam_drw` phase in this sweep." in other
    assert "img/brats-none_mil" not in other  # no figure of empty panels


def test_index_and_plots(docs, text):
    index = (docs / "index.md").read_text()
    assert "| [mil_loss_analysis.md](mil_loss_analysis.md) |" in index
    for name in ("val_auc", "roc"):
        assert f"](img/brats-toy_mil_{name}.png)" in text
        assert (docs / "img" / f"brats-toy_mil_{name}.png").is_file()
