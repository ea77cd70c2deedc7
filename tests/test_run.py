"""End to end: teacher -> student -> evaluation into a real MLflow sqlite store in a tmp dir,
checked through MlflowClient."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from models.model import KDModel
from pipeline.config.loader import load_experiment
from pipeline.training.run import run_experiment
from support import runs_by_stage, sqlite_store, tiny_overrides
from tasks import TASK_KINDS

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path, monkeypatch) -> MlflowClient:
    uri = sqlite_store(tmp_path / "mlruns" / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return MlflowClient(uri)


def _metrics_finite(run, prefix: str) -> dict[str, float]:
    found = {k: v for k, v in run.data.metrics.items() if k.startswith(prefix)}
    assert found, f"no metrics starting with {prefix}"
    assert all(math.isfinite(v) for k, v in found.items() if not k.endswith("/auc")), found
    return found


def test_run_tracks_teacher_and_student_then_reuses_teacher(store, synth_wound, tmp_path):
    cfg = load_experiment("default", tiny_overrides(synth_wound))
    first = run_experiment(cfg, say=lambda s: None)
    assert not first.teacher_reused
    teacher, student = store.get_run(first.teacher_run_id), store.get_run(first.student_run_id)
    assert teacher.info.status == student.info.status == "FINISHED"
    assert student.data.tags["teacher_run_id"] == first.teacher_run_id
    assert (
        student.data.tags["mlflow.runName"] == "synthetic-wound-cross_attention-vanilla-s0"
    )  # no study: in full
    assert teacher.info.run_name == "synthetic-wound-teacher-cross_attention-s0"
    assert not any(k.startswith(("dataset.bags.", "student.mil.")) for k in student.data.params)
    for key in ("dataset", "stage", "loss", "fusion", "vision", "text", "config_hash", "git_commit"):
        assert key in student.data.tags, key
    assert (
        student.data.params["loss.alpha"] == "0.7"
        and student.data.params["dataset.name"] == "synthetic-wound"
    )
    tests = _metrics_finite(student, "test/")
    for key in ("test/type/f1", "test/severity/acc", "test/severity/auc", "test/avg_f1"):
        assert key in tests
    for key in ("latency_ms", "latency_p90_ms", "size_mb", "params"):
        assert student.data.metrics[key] > 0
    parts = {k: v for k, v in student.data.metrics.items() if k.startswith("params/")}
    assert {"params/vision", "params/text", "params/fusion", "params/heads"} <= set(parts)
    assert sum(parts.values()) == student.data.metrics["params"]  # each parameter once
    history = store.get_metric_history(first.student_run_id, "dev/avg_f1")
    assert sorted(m.step for m in history) == [1, 2]
    assert {"train/ce", "train/kd", "train/loss"} <= set(student.data.metrics)
    arts = {f.path for f in store.list_artifacts(first.student_run_id)}
    assert {"config.yaml", "label_maps.json", "confusion", "predictions", "student", "tokenizers"} <= arts
    # the checkpoint loads back with weights_only=True into a freshly built student
    local = store.download_artifacts(first.student_run_id, "student/model.pt", str(tmp_path))
    state = torch.load(io.BytesIO(Path(local).read_bytes()), weights_only=True)
    labels = store.download_artifacts(first.student_run_id, "label_maps.json", str(tmp_path))
    kind = TASK_KINDS.get("multiclass")(json.loads(Path(labels).read_text()))  # as a user rebuilds it
    model = KDModel(
        cfg.student,
        kind,
        state["text.net.embeddings.word_embeddings.weight"].shape[0],
        3,
        "student",
    )
    model.load_state_dict(state)

    second = run_experiment(
        load_experiment("default", [*tiny_overrides(synth_wound), "loss.name=none"]), say=lambda s: None
    )
    assert second.teacher_reused and second.teacher_run_id == first.teacher_run_id
    assert len(runs_by_stage(store, "teacher")) == 1
    assert len(runs_by_stage(store, "student")) == 2


def test_same_config_and_seed_give_identical_metrics(store, synth_wound):
    cfg = load_experiment("default", tiny_overrides(synth_wound, epochs=1))
    a = run_experiment(cfg, say=lambda s: None)
    b = run_experiment(cfg, retrain_teacher=True, say=lambda s: None)
    assert a.teacher_run_id != b.teacher_run_id
    for key in ("test/avg_f1", "test/type/f1", "test/severity/auc"):
        assert a.student[key] == b.student[key], key
        assert a.teacher[key] == b.teacher[key], key


def test_non_finite_loss_marks_run_failed(store, synth_wound, monkeypatch):
    import losses.vanilla

    real = losses.vanilla.VanillaKD.forward

    def boom(self, student, teacher, labels, index):  # the student's loss gains a NaN term
        return {**real(self, student, teacher, labels, index), "injected": student.fused.sum() * float("nan")}

    monkeypatch.setattr(losses.vanilla.VanillaKD, "forward", boom)
    from pipeline.training.train import NonFiniteLoss

    with pytest.raises(NonFiniteLoss, match="injected=nan"):
        run_experiment(load_experiment("default", tiny_overrides(synth_wound, epochs=1)), say=lambda s: None)
    (student,) = runs_by_stage(store, "student")
    assert student.info.status == "FAILED"
    assert "non-finite loss" in student.data.tags["failure_reason"]
    assert all(r.info.status == "FINISHED" for r in runs_by_stage(store, "teacher"))


def test_interrupt_marks_run_killed(store, synth_wound, monkeypatch):
    import pipeline.training.run

    real_fit = pipeline.training.run.fit

    def fit(model, loss_fn, *args, teacher=None, **kw):
        if teacher is not None:  # the student stage
            raise KeyboardInterrupt
        return real_fit(model, loss_fn, *args, teacher=teacher, **kw)

    monkeypatch.setattr(pipeline.training.run, "fit", fit)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(load_experiment("default", tiny_overrides(synth_wound, epochs=1)), say=lambda s: None)
    (student,) = runs_by_stage(store, "student")
    assert student.info.status == "KILLED"


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_run_and_bad_input(tmp_path, synth_medpix, kdsweep_cache):
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": sqlite_store(tmp_path / "mlflow.db"),
        "KDSWEEP_CACHE": str(kdsweep_cache),
    }
    ok = _cli("run", "default", "dataset=synthetic-medpix", *tiny_overrides(synth_medpix, epochs=1), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "teacher vs student" in ok.stdout and "test/location/f1" in ok.stdout
    bad = _cli("run", "default", "loss.temperature=0", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "loss.temperature: expected a value > 0" in bad.stderr
    unknown = _cli("run", "default", "loss.name=kl", env=env)
    assert unknown.returncode == 2 and "unknown loss 'kl' (valid: " in unknown.stderr


@pytest.mark.shared_data
def test_one_epoch_on_real_medpix(store, shared_medpix):
    cfg = load_experiment(
        "default",
        [
            "dataset=medpix",
            f"dataset.root={shared_medpix}",
            "train.teacher_epochs=1",
            "train.student_epochs=1",
            "train.latency_runs=5",
            "train.device=cpu",
        ],
    )
    result = run_experiment(cfg, say=lambda s: None)
    run = store.get_run(result.student_run_id)
    assert run.info.status == "FINISHED"
    assert {"test/modality/f1", "test/location/f1"} <= set(run.data.metrics)
    assert run.data.params["dataset.name"] == "medpix"
