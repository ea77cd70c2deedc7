"""Sweeps through real Ray Tune trials into a real MLflow store (sqlite in a tmp dir; the HTTP
store of an `mlflow server` is tested with the cluster, tests/test_cluster.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from core.errors import ConfigError
from support import runs_by_stage, sqlite_store, tiny_overrides, wait_for

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _study(tmp_path: Path, space: dict, **extra) -> Path:
    path = tmp_path / "study.yaml"
    data = {
        "experiment": "default",
        "space": space,
        "metric": "dev/avg_f1",
        "mode": "max",
        "seeds": [0],
        **extra,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _env(uri: str, cache: Path) -> dict:
    return {**os.environ, "MLFLOW_TRACKING_URI": uri, "KDSWEEP_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


def _sweep_cmd(study: Path, root: Path, *extra: str) -> list[str]:
    docs = study.parent / "docs"  # never the repository's docs/
    return [
        sys.executable,
        "-m",
        "pipeline",
        "sweep",
        str(study),
        *tiny_overrides(root, epochs=1),
        "--docs",
        str(docs),
        *extra,
    ]


def _children(client: MlflowClient, parent_id: str) -> list:
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000)


def test_sweep_runs_concurrent_trials_under_one_parent(
    tmp_path, synth_wound, kdsweep_cache, monkeypatch, local_ray
):
    """8 trials at once (0.25 CPU each) on one sqlite store: parent/child runs, statuses, every
    epoch's metric of every trial present (no 'database is locked', nothing lost). The study has
    two teachers (`teacher_seeds: 2`): each KD student runs against each, `none` once, and the
    loss document shows the teachers' variance (one sweep for both: a sweep costs ~a minute)."""
    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    space = {"loss.name": ["none", "vanilla", "rkd"], "student.fusion.heads": [2, 4]}
    study = _study(tmp_path, space, resources={"cpu": 0.25}, max_concurrent=8, teacher_seeds=2)
    from pipeline.sweeps.sweep import run_sweep

    # the session's Ray, started with another environment: the trials still log to this store
    result = run_sweep(str(study), tiny_overrides(synth_wound, epochs=2), say=lambda s: None)
    client = MlflowClient(uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["stage"] == "sweep"
    assert parent.data.tags["study"] == "study" and parent.data.tags["dataset"] == "synthetic-wound"
    assert "git_commit" in parent.data.tags
    assert "study.yaml" in {a.path for a in client.list_artifacts(result.parent_run_id)}
    children = _children(client, result.parent_run_id)
    students = [r for r in children if r.data.tags["stage"] == "student"]
    teachers = {r.data.tags["teacher_seed"]: r for r in children if r.data.tags["stage"] == "teacher"}
    assert len(students) == 10 and sorted(teachers) == ["0", "1"]  # 2 none + 2 x 2 x 2 KD
    assert all(r.info.status == "FINISHED" for r in children)
    # names start with what the study varies (the UI's list shows a name's first characters);
    # the dataset and fusion every run shares are tags and the description
    assert {r.data.tags["mlflow.runName"] for r in students} == {f"none-h{h}-s0" for h in (2, 4)} | {
        f"{loss}-h{h}-teacher_seed{j}-s0" for loss in ("vanilla", "rkd") for h in (2, 4) for j in (0, 1)
    }
    assert parent.info.run_name == "study-synthetic-wound"
    for j, t in teachers.items():
        assert t.info.run_name == f"teacher-s{j}-{t.data.tags['teacher_hash'][:6]}"
    for r in students:
        assert r.data.tags["dataset"] == "synthetic-wound" and r.data.tags["fusion"] == "cross_attention"
        assert "dataset synthetic-wound" in r.data.tags["mlflow.note.content"]
        j = r.data.tags.get("teacher_seed")
        assert (j is None) == (r.data.tags["loss"] == "none")  # none runs once, reads no teacher
        if j is not None:  # each KD student distilled from the teacher of its teacher seed
            assert r.data.tags["teacher_run_id"] == teachers[j].info.run_id
    for r in students:  # every epoch of every trial made it to the store
        assert [m.step for m in client.get_metric_history(r.info.run_id, "dev/avg_f1")] == [1, 2]
        assert "test/avg_f1" in r.data.metrics
    assert [row.status for row in result.rows] == ["FINISHED"] * 10
    devs = [row.dev for row in result.rows]
    assert devs == sorted(devs, reverse=True)
    from reports.__main__ import build

    build(tmp_path / "docs")
    text = (tmp_path / "docs" / "loss_explore.md").read_text()
    part = text.split("### Teacher variance (synthetic-wound)")[1].split("**synthetic-wound takeaway")[0]
    assert "Teacher protocol: 2 teachers (teacher seeds 0, 1), each trained once" in part
    assert "| teacher 0 |" in part and "| teacher 1 |" in part
    assert (
        "Teachers' test avg F1 over 2 teachers:" in part and " ± " in part.split("Teachers' test avg F1")[1]
    )
    rows = part.split("| Configuration |")[1].split("\n\n")[0]
    assert "| `vanilla` |" in rows and "| `rkd` |" in rows and "`none`" not in rows  # none: no teacher
    assert "Best on dev with every teacher" in part or "depends on the teacher" in part
    assert "beats `none` with" in part or "shown to beat `none`" in part


def test_invalid_combination_is_refused_before_any_trial(tmp_path, synth_wound, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    study = _study(tmp_path, {"student.fusion.heads": [2, 3]})
    from pipeline.sweeps.sweep import run_sweep

    with pytest.raises(
        ConfigError, match=r"student.fusion.dim: expected dim divisible by heads.*\[student.fusion.heads=3\]"
    ):
        run_sweep(str(study), tiny_overrides(synth_wound), say=lambda s: None)
    assert not (tmp_path / "mlflow.db").exists()  # nothing was started or written


def test_failed_trial_is_isolated_and_a_killed_sweep_resumes(tmp_path, synth_wound, kdsweep_cache):
    """kill -9 the driver after a trial finished; the same command resumes: failures stay
    isolated, nothing runs twice, nothing is left RUNNING. What the resumed sweep prints is
    kdsweep's own lines only (pipeline.sweeps.output)."""
    uri = sqlite_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    # num_heads=3 does not divide the ViT width 64: that trial raises inside timm at build time
    space = {"loss.name": ["none", "vanilla"], "student.vision.kwargs.num_heads": [2, 3]}
    study = _study(tmp_path, space, max_concurrent=1)
    # as a new user's shell: ray.init in this process (another test's) set RAY_AUTH_MODE=token,
    # which would keep Ray from printing its token notice whether kdsweep hides it or not
    env = {k: v for k, v in _env(uri, kdsweep_cache).items() if k not in ("RAY_AUTH_MODE", "KDSWEEP_VERBOSE")}
    driver = subprocess.Popen(
        _sweep_cmd(study, synth_wound),
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def one_finished() -> bool:
            try:
                return any(r.info.status == "FINISHED" for r in runs_by_stage(client, "student"))
            except Exception:
                return False

        wait_for(one_finished, 300, "a FINISHED student run")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        driver.wait()
    second = subprocess.run(
        _sweep_cmd(study, synth_wound), cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert second.returncode == 1, second.stderr[-2000:]  # failed trials remain: non-zero exit
    assert "FINISHED earlier" in second.stdout
    _assert_quiet(second.stdout + second.stderr)
    students = runs_by_stage(client, "student")
    assert not [r for r in students if r.info.status == "RUNNING"]
    finished = [r for r in students if r.info.status == "FINISHED"]
    assert sorted(r.data.tags["config_hash"] for r in finished) == sorted(
        {r.data.tags["config_hash"] for r in finished}
    )
    assert len(finished) == 2  # the two heads=2 configurations, once each
    failed = [r for r in students if r.info.status == "FAILED"]
    assert failed and all(
        "num_heads" in r.data.tags["failure_reason"] or "divisible" in r.data.tags["failure_reason"]
        for r in failed
    )
    assert len(runs_by_stage(client, "teacher")) == 1
    parents = [r for r in runs_by_stage(client, "sweep")]
    assert len(parents) == 2 and {p.info.status for p in parents} == {"KILLED", "FINISHED"}


def _assert_quiet(out: str) -> None:
    """Only kdsweep's lines: no Tune status table, no token notice, no Ray INFO log lines; a line
    longer than any terminal (the command's header with its overrides) is still one line."""
    assert "== Status ==" not in out and "Token authentication" not in out
    assert "Started a local Ray instance" not in out
    assert not re.search(r"\tINFO \S+\.py:\d+ -- ", out), out[-3000:]  # Ray's log format
    header = [line for line in out.splitlines() if line.startswith("kdsweep sweep ")]
    assert len(header) == 1 and "train.device=cpu" in header[0] and "   MLflow: sqlite:///" in header[0]
    for event in ("RUNNING", "TERMINATED"):  # one line per trial event (a trial's error is a result)
        assert re.search(rf"^\[\w+\] {event} +\S", out, re.M), out[-3000:]
