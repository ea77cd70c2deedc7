"""System failures vs a trial's own errors, on a real Ray Tune sweep: a worker killed with
SIGKILL ends its MLflow run FAILED with the worker's death as the cause, and the trial is run
again (`retries`, default 1); a trial that raises is FAILED once and never retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from support import runs_by_stage, sqlite_store, tiny_overrides, wait_for

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
A = "none-num_heads2-s0"  # killed once: retried, then FINISHED
B = "vanilla-num_heads2-s0"  # killed twice: retries run out


def _running(client: MlflowClient, name: str, seen: set[str]):
    """A new RUNNING student run named `name` that has logged its worker's pid, or None."""
    for r in runs_by_stage(client, "student"):
        if r.info.run_name == name and r.info.status == "RUNNING" and r.info.run_id not in seen:
            if "worker_pid" in r.data.tags:
                return r
    return None


def _kill(client: MlflowClient, name: str, seen: set[str]) -> str:
    found: dict = {}

    def started() -> bool:
        try:
            found["run"] = _running(client, name, seen)
        except Exception:  # the store is being created by the driver
            return False
        return found["run"] is not None

    wait_for(started, 300, f"a RUNNING run {name}", every=0.1)
    run = found["run"]
    os.kill(int(run.data.tags["worker_pid"]), signal.SIGKILL)
    seen.add(run.info.run_id)
    return run.info.run_id


def test_killed_worker_fails_its_run_and_is_retried_while_own_errors_are_not(
    tmp_path, synth_wound, kdsweep_cache
):
    uri = sqlite_store(tmp_path / "mlflow.db")
    # num_heads=3 does not divide the ViT width 64: those trials raise (their own error).
    # `retries` is left out: the default (1) applies.
    study = tmp_path / "study.yaml"
    space = {"loss.name": ["none", "vanilla"], "student.vision.kwargs.num_heads": [2, 3]}
    study.write_text(yaml.safe_dump({"experiment": "default", "space": space, "max_concurrent": 1}))
    cmd = [sys.executable, "-m", "pipeline", "sweep", str(study), *tiny_overrides(synth_wound, epochs=3)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "KDSWEEP_CACHE": str(kdsweep_cache)}
    driver = subprocess.Popen(
        [*cmd, "--docs", str(tmp_path / "docs")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = MlflowClient(uri)
    seen: set[str] = set()
    try:
        killed_a = _kill(client, A, seen)
        killed_b = [_kill(client, B, seen), _kill(client, B, seen)]
        out, _ = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 1, out[-3000:]  # some trials failed
    students = runs_by_stage(client, "student")
    by_name: dict[str, list] = {}
    for r in students:
        by_name.setdefault(r.info.run_name, []).append(r)
    assert not [r for r in students if r.info.status == "RUNNING"]
    for run_id in [killed_a, *killed_b]:
        run = client.get_run(run_id)
        assert run.info.status == "FAILED", (run.info.status, run.data.tags.get("failure_reason"))
        assert run.data.tags["failure_reason"].startswith("worker died: "), run.data.tags["failure_reason"]
        assert "early stopping" not in run.data.tags["failure_reason"]
    # the retried trial left exactly one FINISHED run for its configuration
    assert sorted(r.info.status for r in by_name[A]) == ["FAILED", "FINISHED"]
    assert sorted(r.info.status for r in by_name[B]) == ["FAILED", "FAILED"]
    # a trial's own error: one FAILED run each, never retried
    for name in (A.replace("num_heads2", "num_heads3"), B.replace("num_heads2", "num_heads3")):
        (run,) = by_name[name]
        assert run.info.status == "FAILED" and "divisible" in run.data.tags["failure_reason"]
    # the summary (and trials.json, which the reports read): the right label for each trial
    (parent,) = runs_by_stage(client, "sweep")
    local = client.download_artifacts(parent.info.run_id, "trials.json", str(tmp_path))
    rows = {r["label"]: r for r in json.loads(Path(local).read_text())}
    a_row = rows["loss.name=none student.vision.kwargs.num_heads=2 seed=0"]
    b_row = rows["loss.name=vanilla student.vision.kwargs.num_heads=2 seed=0"]
    assert a_row["status"] == "FINISHED" and a_row["run_id"] in {r.info.run_id for r in by_name[A]}
    assert b_row["status"] == "FAILED" and b_row["error"].startswith("worker died: "), b_row
    assert "Some common causes" not in b_row["error"]  # the cause, without Ray's generic advice
    assert "worker died: " in out and "RETRY" in out
    assert "1 teacher(s) trained" in out


def _sweep(tmp_path: Path, study: dict, root: Path, epochs: int = 2):
    """The study in this process on the session's Ray (its trials log to MLFLOW_TRACKING_URI)."""
    from pipeline.sweeps.sweep import run_sweep

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"experiment": "default", "seeds": [0], **study}))
    return run_sweep(str(path), tiny_overrides(root, epochs=epochs), say=lambda s: None)


def test_students_of_a_failed_teacher_are_not_started(tmp_path, synth_wound, monkeypatch, local_ray):
    """A failed teacher blocks the students that distil from it; `none` reads no teacher and runs."""
    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # the teacher's ViT cannot be built (5 heads do not divide its width 96); the students could
    study = {"space": {"loss.name": ["none", "vanilla"]}, "overrides": ["teacher.vision.kwargs.num_heads=5"]}
    done = _sweep(tmp_path, study, synth_wound)
    assert sorted(r.status for r in done.rows) == ["FAILED", "FINISHED"]  # the CLI exits 1
    client = MlflowClient(uri)
    (teacher,) = runs_by_stage(client, "teacher")
    assert teacher.info.status == "FAILED" and "divisible" in teacher.data.tags["failure_reason"]
    (student,) = runs_by_stage(client, "student")  # the vanilla student was never started
    assert student.data.tags["loss"] == "none" and student.info.status == "FINISHED"
    assert "teacher_run_id" not in student.data.tags  # no FINISHED teacher to name
    assert (done.teachers_trained, done.teachers_failed) == (0, 1)  # what the CLI prints
    (parent,) = runs_by_stage(client, "sweep")
    local = client.download_artifacts(parent.info.run_id, "trials.json", str(tmp_path))
    rows = {r["point"]["loss.name"]: r for r in json.loads(Path(local).read_text())}
    assert rows["none"]["status"] == "FINISHED" and rows["vanilla"]["status"] == "FAILED"
    assert rows["vanilla"]["error"].startswith("teacher failed: ") and "divisible" in rows["vanilla"]["error"]


def test_only_runs_the_scheduler_stopped_are_labelled_early_stopping(
    tmp_path, synth_wound, monkeypatch, local_ray
):
    """ASHA (grace 2 epochs) stops the student that cannot learn (lr 1e-9) behind one that can:
    its run ends KILLED with the early-stopping reason; the other FINISHED."""
    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    study = {
        "space": {"train.lr": [0.003, 1e-9]},
        "overrides": ["loss.name=none", "train.patience=10"],
        "scheduler": "asha",
        "max_concurrent": 1,
    }
    done = _sweep(tmp_path, study, synth_wound, epochs=3)
    assert sorted(r.status for r in done.rows) == ["FINISHED", "STOPPED early"]  # the CLI exits 0
    client = MlflowClient(uri)
    by_lr = {r.data.params["train.lr"]: r for r in runs_by_stage(client, "student")}
    assert by_lr["0.003"].info.status == "FINISHED"
    stopped = by_lr["1e-09"]
    assert stopped.info.status == "KILLED", stopped.data.tags.get("failure_reason")
    assert stopped.data.tags["failure_reason"] == "stopped before finishing (early stopping by the scheduler)"
