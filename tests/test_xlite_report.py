"""The X-Lite document and CSV (seed 004) from a tmp MLflow store of hand-made runs that follow
the study driver's contract: phases, a run reused in several phases, a failed trial, 3-fold
cross-validation, a final refit, saved predictions; and the AUC bootstrap they rest on."""

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

TASK = "findings"
LABELS = ["Atelectasis", "Cardiomegaly", "Effusion", "Hernia"]  # Hernia: no positive on test
N = 60
SEED_HEADER = (
    "experiment_id,date,phase,model_name,cnn_backbone,attention_type,kd_temperature,kd_alpha,batch_size,"
    "learning_rate,epochs,train_loss,val_auc_macro,val_f1_macro,test_auc_macro,test_f1_macro,"
    "inference_time_ms,model_size_mb,status,notes"
)
EFF, MOB = "efficientnet_b0", "mobilenetv3_small_100"
CONTROL_SIGNAL = 1.5  # below KD_002's 3.0, yet the paired interval reaches 0: within noise


def preds_csv(signal: float, seed: int = 0) -> str:
    """Test predictions in the multilabel format; `signal` separates positives from negatives."""
    y = (np.random.default_rng(0).random((N, len(LABELS))) < 0.4).astype(int)
    y[:, 3] = 0
    p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + np.random.default_rng(seed + 1).normal(size=y.shape))))
    cols = ["index"] + [f"{TASK}/{c}/{x}" for c in LABELS for x in ("label", "p")]
    rows = [[i] + [v for j in range(len(LABELS)) for v in (y[i, j], f"{p[i, j]:.6f}")] for i in range(N)]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([cols, *rows])
    return buf.getvalue()


def trial(phase: str, exp_id: str, point: dict, seed: int = 0, fold=None, **kw) -> dict:
    """A trials.json entry; `kw` overrides the FINISHED defaults (status, run_id, dev, error)."""
    label = f"{phase} {exp_id} seed={seed}" + (f" fold={fold}" if fold is not None else "")
    out = {"label": label, "status": "FINISHED", "dev": None, "test_avg_f1": None, "run_id": None}
    out |= {"error": None, "phase": phase, "exp_id": exp_id, "point": point, "seed": seed, "fold": fold}
    return out | kw


def student(c, exp, parent, phase, exp_id, backbone, val, test, **kw) -> dict:
    """A FINISHED student run as the driver logs it; returns its trials.json entry. `kw`:
    attention, tau and alpha (distillation when tau is given), seed, fold, refit, signal (of the
    saved predictions), latency, size, train (AUC), history (per-epoch), teacher (run id)."""
    from mlflow.entities import Metric, Param

    tau, alpha, fold, seed = kw.get("tau"), kw.get("alpha"), kw.get("fold"), kw.get("seed", 0)
    train = kw.get("train", 0.9)
    tags = {"stage": "student", "phase": phase, "exp_id": exp_id, "seed": str(seed), "tasks": TASK}
    tags |= {"config_hash": exp_id, "teacher_run_id": kw.get("teacher", "t0"), "mlflow.parentRunId": parent}
    tags |= {"mlflow.runName": f"xray-{exp_id}-s{seed}"} | ({"fold": str(fold)} if fold is not None else {})
    rid = c.create_run(exp, tags=tags).info.run_id
    params = {"seed": seed, "student.vision.name": backbone, "loss.params": str({"focal_weight": 0.5})}
    params |= {
        "student.vision.attention": kw.get("attention", "mhsa"),
        "loss.name": "xlite_kd" if tau else "none",
    }
    alpha = 0.7 if alpha is None else alpha  # 0: the kd_control phase
    params |= {"loss.temperature": tau or 4.0, "loss.alpha": alpha, "train.batch_size": 64}
    params |= {"train.lr": 0.001, "train.student_epochs": 5, "loss.label_loss": "weighted_bce"}
    params |= {"train.monitor": f"{TASK}/auc", "split.folds": 3 if fold is not None else 0}
    params |= {"split.fold": fold or 0, "split.refit": kw.get("refit", False)}
    m = {f"best_dev/{TASK}/auc": val, f"best_dev/{TASK}/f1": val - 0.3, f"best_train/{TASK}/auc": train}
    m |= {f"test/{TASK}/auc": test, f"test/{TASK}/f1": test - 0.35, f"test/{TASK}/f1_tuned": test - 0.25}
    m |= {"latency_ms": kw.get("latency", 10.0), "size_mb": kw.get("size", 10.0), "params": 4e6}
    for k, label in enumerate(LABELS):
        nan = label == "Hernia"
        for prefix, v in (("best_dev", val), ("best_train", train), ("test", test)):
            m[f"{prefix}/{TASK}/auc/{label}"] = float("nan") if nan else v + 0.01 * (k - 1)
        for name, v in (("f1", 0.5), ("precision", 0.6), ("recall", 0.4), ("threshold", 0.3)):
            m[f"test/{TASK}/{name}/{label}"] = 0.0 if nan and name != "threshold" else v + 0.01 * k
    metrics = [Metric(k, float(v), 0, 0) for k, v in m.items()]
    for epoch, (d, parts) in enumerate(kw.get("history") or [], start=1):
        metrics.append(Metric(f"dev/{TASK}/auc", d, epoch, epoch))
        metrics += [Metric(f"train/{k}", v, epoch, epoch) for k, v in parts.items()]
    c.log_batch(rid, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    c.log_text(rid, preds_csv(kw.get("signal", 1.0), seed), "predictions/test.csv")
    pairs = [["Effusion", "Atelectasis", 7], ["Cardiomegaly", "Effusion", 3]]
    c.log_text(rid, json.dumps(pairs), f"errors/{TASK}_confused_pairs.json")
    c.set_terminated(rid, "FINISHED")
    point = {"student.vision.name": backbone} | (
        {"loss.temperature": tau, "loss.alpha": alpha} if tau else {}
    )
    return trial(phase, exp_id, point, seed, fold, run_id=rid, dev=val, test_avg_f1=test - 0.35)


def again(trial: dict, phase: str, exp_id: str, **point) -> dict:
    """The same configuration listed in another phase: same run, not re-run."""
    return {
        **trial,
        "status": "FINISHED earlier",  # what the driver writes for a configuration it finds FINISHED
        "phase": phase,
        "exp_id": exp_id,
        "label": f"{phase} {exp_id} seed=0",
        "point": {**trial["point"], **point},
    }


def start_parent(c, exp) -> str:
    return c.create_run(
        exp,
        tags={
            "stage": "sweep",
            "study": "xlite",
            "study_kind": "xlite",
            "dataset": "xray-toy",
            "sweep_hash": "hx",
        },
    ).info.run_id


def finish_parent(c, rid, trials, phases, seeds: str = "[0]") -> None:
    """The driver's end of a sweep: params, trials.json, phases.json, FINISHED."""
    from mlflow.entities import Param

    c.log_batch(rid, params=[Param("seeds", seeds), Param("metric", f"dev/{TASK}/auc")])
    c.log_text(rid, json.dumps(trials), "trials.json")
    if phases is not None:
        c.log_text(rid, json.dumps(phases), "phases.json")
    c.set_terminated(rid, "FINISHED")


def chosen(trial: dict, exp_id: str | None = None) -> dict:
    return {
        "exp_id": exp_id or trial["exp_id"],
        "run_ids": [trial["run_id"]],
        "point": trial["point"],
        "dev": trial["dev"],
    }


def bare_sweep(c, exp) -> str:
    """An earlier sweep without phases.json, sensitivity, cv or final phases, over two seeds."""
    pid = start_parent(c, exp)
    trials = [
        student(c, exp, pid, "baseline", "BASELINE_001", EFF, val, 0.79, attention="none", seed=seed)
        for seed, val in ((0, 0.78), (1, 0.76))
    ] + [
        student(c, exp, pid, "distillation", "KD_001", EFF, val, 0.77, tau=4.0, alpha=0.7, seed=seed)
        for seed, val in ((0, 0.80), (1, 0.82))
    ]
    finish_parent(c, pid, trials, None, seeds="[0, 1]")
    return pid


def fill() -> str:
    """The full study, after an earlier bare sweep (whose id is returned) in the same store."""
    c, exp = toy_experiment()
    older = bare_sweep(c, exp)
    teacher = c.create_run(exp, tags={"stage": "teacher", "mlflow.runName": "xray-teacher"}).info.run_id
    for k, v in {f"test/{TASK}/auc": 0.86, "size_mb": 48.0, "latency_ms": 20.0}.items():
        c.log_metric(teacher, k, v)
    c.set_terminated(teacher, "FINISHED")
    pid = start_parent(c, exp)
    s = lambda *a, **k: student(c, exp, pid, *a, teacher=teacher, **k)  # noqa: E731
    b1 = s("baseline", "BASELINE_001", EFF, 0.78, 0.765, attention="none", signal=0.2, latency=245, size=14.2)
    b2 = s("baseline", "BASELINE_002", MOB, 0.77, 0.775, attention="none", latency=180, size=10.5)
    hist = [
        (0.70, {"loss": 0.9, "kd": 0.3, "weighted_bce": 0.4, "focal": 0.2}),
        (0.81, {"loss": 0.7, "kd": 0.25, "weighted_bce": 0.3, "focal": 0.15}),
        (0.80, {"loss": 0.6, "kd": 0.2, "weighted_bce": 0.25, "focal": 0.15}),
    ]
    kd = [
        s("distillation", "KD_001", EFF, 0.79, 0.80, tau=4.0, alpha=0.7),  # best on test, not on val
        s("distillation", "KD_002", EFF, 0.81, 0.78, tau=4.0, alpha=0.5, signal=3.0, history=hist),
        s("distillation", "KD_003", EFF, 0.785, 0.775, tau=8.0, alpha=0.7),
        s("distillation", "KD_004", EFF, 0.78, 0.77, tau=8.0, alpha=0.5),
        s("distillation", "KD_005", MOB, 0.775, 0.77, tau=4.0, alpha=0.7, latency=150, size=9.0),
        s("distillation", "KD_006", MOB, 0.77, 0.765, tau=4.0, alpha=0.5),
        s("distillation", "KD_007", MOB, 0.765, 0.76, tau=8.0, alpha=0.7),
        trial(
            "distillation",
            "KD_008",
            {"student.vision.name": MOB, "loss.temperature": 8.0, "loss.alpha": 0.5},
            status="FAILED",
            error="RuntimeError: CUDA out of memory",
        ),
    ]
    tau = [
        s("sensitivity_tau", "TAU_001", EFF, 0.78, 0.77, tau=2.0, alpha=0.5),
        again(kd[1], "sensitivity_tau", "TAU_002"),
        s("sensitivity_tau", "TAU_003", EFF, 0.80, 0.81, tau=6.0, alpha=0.5),  # better on test only
        again(kd[3], "sensitivity_tau", "TAU_004"),
    ]
    alpha = [
        again(kd[1], "sensitivity_alpha", "ALPHA_001"),
        again(kd[0], "sensitivity_alpha", "ALPHA_002"),
        s("sensitivity_alpha", "ALPHA_003", EFF, 0.775, 0.76, tau=4.0, alpha=0.9),
    ]
    cv = [
        s("cv", "CV_001", EFF, v, t, tau=4.0, alpha=0.5, fold=f, train=tr)
        for f, (tr, v, t) in enumerate([(0.90, 0.80, 0.79), (0.88, 0.78, 0.77), (0.86, 0.82, 0.78)])
    ]
    final = [
        s(
            "final",
            "FINAL_001",
            EFF,
            0.95,
            0.785,
            tau=4.0,
            alpha=0.5,
            refit=True,
            train=0.93,
            latency=260,
            size=15.8,
        )
    ]
    # the control of KD_002 (alpha 0), made last: the runs before it keep their ids and times
    control = s("kd_control", "CONTROL_001", EFF, 0.80, 0.775, tau=4.0, alpha=0.0, signal=CONTROL_SIGNAL)
    kd_phases = ["distillation", "sensitivity_tau", "sensitivity_alpha"]
    phases = [
        {"name": "baseline", "id": "p1", "best_of": [], "chosen": None},
        {"name": "distillation", "id": "p2", "best_of": [], "chosen": None},
        {"name": "kd_control", "id": "CONTROL", "best_of": ["distillation"], "chosen": chosen(kd[1])},
        {"name": "sensitivity_tau", "id": "p3", "best_of": ["distillation"], "chosen": chosen(kd[1])},
        {
            "name": "sensitivity_alpha",
            "id": "p4",
            "best_of": kd_phases[:2],
            "chosen": chosen(kd[1], "TAU_002"),
        },
        {"name": "cv", "id": "p5", "best_of": kd_phases, "chosen": chosen(kd[1])},
        {"name": "final", "id": "p6", "best_of": kd_phases, "chosen": chosen(kd[1])},
    ]
    trials = [b1, b2, *kd, *tau, *alpha, *cv, *final, control]
    finish_parent(c, pid, trials, phases)
    return older


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(folder, the earlier sweep's id): one database for the module (creating one takes seconds)."""
    tmp = tmp_path_factory.mktemp("xlite")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp / "mlflow.db"))
        from reports.__main__ import build

        older = fill()
        build(tmp / "docs")
        yield tmp, older
        build(tmp / "again")  # rebuilding gives byte-identical files
        for path in sorted(p for p in (tmp / "docs").rglob("*") if p.is_file()):
            assert path.read_bytes() == (tmp / "again" / path.relative_to(tmp / "docs")).read_bytes(), path


@pytest.fixture
def docs(store):
    return store[0] / "docs"


def _csv(docs) -> pd.DataFrame:
    return pd.read_csv(docs / "xlite_results.csv", dtype=str, keep_default_na=False)


def test_csv_has_the_seeds_columns_ids_and_phases(docs):
    assert (docs / "xlite_results.csv").read_text().splitlines()[0] == SEED_HEADER
    df = _csv(docs)
    assert list(df["experiment_id"][:3]) == ["BASELINE_001", "BASELINE_002", "KD_001"]
    pairs = set(zip(df["experiment_id"], df["phase"], strict=True))
    assert {
        ("BASELINE_001", "baseline"),
        ("KD_002", "distillation"),
        ("TAU_002", "sensitivity"),
        ("ALPHA_003", "sensitivity"),
        ("CV_001", "cv"),
        ("FINAL_001", "final"),
    } <= pairs
    assert (df["experiment_id"] == "CV_001").sum() == 3
    rows = df.set_index("experiment_id")
    base = rows.loc["BASELINE_001"]
    assert (base["kd_temperature"], base["kd_alpha"], base["model_name"]) == ("N/A", "N/A", "StudentNet")
    k2 = rows.loc["KD_002"]
    assert (k2["kd_temperature"], k2["kd_alpha"], k2["model_name"]) == ("4.0", "0.5", "StudentNet+KD")
    assert (k2["epochs"], k2["train_loss"], k2["val_auc_macro"]) == ("3", "0.7000", "0.8100")
    assert (
        "chosen on validation for kd_control, sensitivity_tau, cv, final; best on validation of its phase"
        in k2["notes"]
    )
    assert "chosen on validation for sensitivity_alpha" in rows.loc["TAU_002"]["notes"]  # its exp_id
    assert "early stopping after 3 of 5 epochs" in k2["notes"]
    assert "same run as KD_002" in rows.loc["TAU_002"]["notes"]
    assert "earlier sweep" not in rows.loc["TAU_002"]["notes"]  # FINISHED earlier: in this sweep
    assert rows.loc["TAU_002"]["val_auc_macro"] == "0.8100"  # the reused run's numbers
    failed = rows.loc["KD_008"]
    assert failed["status"] == "failed" and "CUDA out of memory" in failed["notes"]
    assert failed["val_auc_macro"] == "" and failed["cnn_backbone"] == MOB
    assert "val in-sample (refit on train+val)" in rows.loc["FINAL_001"]["notes"]
    assert set(df["status"]) == {"completed", "failed"}


def test_kd_table_order_and_choice_on_validation_not_test(docs):
    text = (docs / "xlite_experiments.md").read_text()
    assert text.startswith("<!-- Generated by `make report` from sqlite:///")
    kd_rows = [line for line in text.splitlines() if re.match(r"\| KD_00\d \|", line)]
    assert [r.split("|")[1].strip() for r in kd_rows] == [f"KD_00{i}" for i in range(1, 9)]
    assert kd_rows[0].endswith("| 0.7900 | 0.8000 | best on test (not used to choose) |")
    assert kd_rows[1] == f"| KD_002 | {EFF} | mhsa | 4 | 0.5 | 0.8100 | 0.7800 | chosen on validation |"
    assert "failed: RuntimeError: CUDA out of memory" in kd_rows[7]
    assert f"**Decision**: `{EFF}` (BASELINE_001), the highest validation macro AUC (0.7800)." in text
    assert f"- On test `{MOB}` scores higher (0.7750); test does not choose." in text
    assert (
        "| With KD (best τ, α on validation) | `KD_002` (" in text and "| 0.8100 | 0.7800 | +0.0150 |" in text
    )
    assert "| 4 | TAU_002 | 0.8100 | 0.7800 | ← chosen on validation |" in text
    assert (
        "Finding: validation picks τ=4 (validation AUC 0.8100); on test τ=6 scores highest (0.8100)" in text
    )
    assert "| 0.5 | ALPHA_001 | 0.8100 | 0.7800 | ← chosen on validation |" in text
    assert "- Note:" not in text  # phases.json's picks are the best on validation here too


def test_bootstrap_line(docs):
    text = (docs / "xlite_experiments.md").read_text()
    m = re.search(
        r"Paired bootstrap of the test macro-AUC difference \(KD − baseline\) over the 60 test images, "
        r"matched by image index and seed \(seed 0\), 1000 resamples with a fixed resampling seed: "
        r"\+(0\.\d{4}), 95 % interval \[\+(0\.\d{4}), \+(0\.\d{4})\]: beyond noise",
        text,
    )
    assert m, text
    diff, lo, hi = (float(x) for x in m.groups())
    assert lo < diff < hi
    # against the baseline three things change at once: its verdict never credits KD alone
    assert "#### KD + focal + attention vs the baseline: three changes at once" in text
    assert "**Verdict**: the combination scores higher beyond noise; which of its changes" in text
    assert "**Conclusion**: distillation helps" not in text


def test_kd_against_its_alpha_zero_control(docs):
    text = (docs / "xlite_experiments.md").read_text()
    head = "#### KD against its control (teacher weight α = 0, phase `kd_control`)"
    assert text.index(head) < text.index("#### KD + focal + attention vs the baseline")
    assert f"| Control: α = 0 (no teacher term) | `CONTROL_001` ({EFF}, attention mhsa, τ=4, α=0) |" in text
    assert f"| With KD (chosen on validation) | `KD_002` ({EFF}, attention mhsa, τ=4, α=0.5) |" in text
    m = re.search(
        r"\(KD − control\) over the 60 test images, .*?\(seed 0\).*?: \+(0\.\d{4}), 95 % interval", text
    )
    assert m and float(m.group(1)) > 0, text
    assert "within noise (the interval contains 0)" in text
    assert (
        "**Conclusion**: the difference is within noise: this test set does not show that distillation helps."
        in text
    )
    assert "- KD (KD_002) against its α = 0 control (CONTROL_001), the teacher's own effect" in text
    assert "the teacher term's own gain is within noise" in text  # the recommendation says so too
    rows = _csv(docs).set_index("experiment_id")
    assert rows.loc["CONTROL_001", "phase"] == "kd_control" and rows.loc["CONTROL_001", "kd_alpha"] == "0.0"
    assert "control of KD_002: teacher weight alpha 0" in rows.loc["CONTROL_001", "notes"]


def test_final_cv_teacher_errors_and_failures(docs):
    text = (docs / "xlite_experiments.md").read_text()
    assert "### Phase 3: final model (FINAL_001)" in text
    assert "| Atelectasis | 0.9200 | 0.8000 | 0.7750 | 0.5000 | 0.6000 | 0.4000 |" in text  # val: KD_002
    assert "| Hernia | n/a | n/a | n/a | 0.0000 | 0.0000 | 0.0000 |" in text  # one class on every split
    assert "| **MACRO AVG** | 0.9300 | 0.8100 | 0.7850 |" in text
    assert "own validation numbers are in-sample" in text
    assert "| **Mean** | 0.8800 | 0.8000 | 0.7800 | over 3 folds |" in text
    assert "| **Std** | 0.0200 | 0.0200 | 0.0100 | sample std (n − 1) |" in text
    assert "| Effusion | Atelectasis | 7 |" in text
    assert "AUC delta (student − teacher): -0.0750" in text
    assert "| distillation | KD_008 | 0 |  | FAILED | RuntimeError: CUDA out of memory |" in text
    assert "- Smallest: `KD_005`" in text
    for img in ("roc_findings", "tau", "alpha", "losses"):
        assert f"](img/xray-toy_xlite_{img}.png)" in text
        assert (docs / "img" / f"xray-toy_xlite_{img}.png").is_file()
    assert "| 2 (restored: best validation AUC) | 0.7000 | 0.1500 | 0.2500 | 0.3000 |" in text
    assert "`weighted_bce` = (1 − α)·weighted_bce (0.5), `focal` = λ·focal (λ = 0.5)" in text


def test_index_lists_the_documents_and_results_csv_keeps_its_runs(docs):
    index = (docs / "index.md").read_text()
    assert "| [xlite_experiments.md](xlite_experiments.md) |" in index
    assert "| [xlite_results.csv](xlite_results.csv) |" in index
    assert (docs / "results.csv").read_text().count("\n") == 1  # X-Lite runs have their own CSV


def test_without_phases_json_or_final_the_choice_falls_back_to_validation(store):
    from reports.__main__ import build

    tmp, older = store
    build(tmp / "bare", sweep_id=older)  # --sweep-id: the older sweep of the same study and dataset
    text = (tmp / "bare" / "xlite_experiments.md").read_text()
    assert f"Sweep run `{older}`" in text
    assert "No `final` phase in this sweep: the table shows `KD_001`" in text
    assert "No `sensitivity_tau` phase in this sweep." in text and "### Cross-validation" not in text
    # seeds paired, identical predictions per seed: difference 0
    assert "matched by image index and seed (seeds 0, 1)" in text
    assert "within noise (the interval contains 0)" in text
    assert "is the choice on validation, but its test gain over `BASELINE_001`" in text
    assert "No `kd_control` phase in this sweep (it predates the control)" in text  # an older store
    assert "#### KD + focal + attention vs the baseline: three changes at once" in text
    rows = _csv(tmp / "bare").set_index("experiment_id")
    assert list(rows.index) == ["BASELINE_001", "KD_001"]  # one row per experiment, over seeds
    assert rows.loc["KD_001", "val_auc_macro"] == "0.8100"
    assert "mean over seeds 0, 1" in rows.loc["KD_001", "notes"]


def test_weighted_auc_and_roc_points_are_sklearns():
    from sklearn.metrics import roc_auc_score, roc_curve

    from reports.plots import roc_points
    from reports.resample import weighted_auc

    rng = np.random.default_rng(5)
    for _ in range(40):
        n = int(rng.integers(6, 50))
        y = rng.integers(0, 2, n)
        p = np.round(rng.random(n), 1)  # ties
        rows = rng.integers(0, n, (8, n))
        weights = np.stack([np.bincount(r, minlength=n) for r in rows]).astype(float)
        got = weighted_auc(y, p, weights)
        want = [roc_auc_score(y[r], p[r]) if len(set(y[r])) == 2 else np.nan for r in rows]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        if len(set(y)) == 2:
            fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
            np.testing.assert_allclose(np.stack(roc_points(y, p)), np.stack([fpr, tpr]), rtol=0, atol=1e-12)
