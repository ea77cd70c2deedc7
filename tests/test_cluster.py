"""The README's "Scaling out" path, as a user runs it (the only test of an HTTP tracking store,
with artifacts proxied by the server): a real Ray head started with `ray start
--head` (token authentication on), a real `mlflow server`, and `python -m pipeline sweep` with
RAY_ADDRESS and MLFLOW_TRACKING_URI. The test stops exactly the processes it started."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from core.errors import DataError
from support import free_port, mlflow_server, runs_by_stage, wait_for

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
TINY = [  # tiny_overrides without dataset.root: the root comes from SYNTHETIC_WOUND_ROOT
    "teacher.vision.image_size=32",
    "teacher.vision.kwargs.img_size=32",
    "student.vision.image_size=32",
    "student.vision.kwargs.img_size=32",
    "train.teacher_epochs=1",
    "train.student_epochs=1",
    "train.batch_size=16",
    "train.latency_runs=5",
    "train.device=cpu",
]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def _processes(pgid: int) -> set[int]:
    """The processes of one process group and all their descendants (Ray's workers run in
    groups of their own, as children of the raylet)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,pgid=,stat="], capture_output=True, text=True).stdout
    # zombies have exited already (their parent has not reaped them yet)
    table = [row.split()[:3] for row in out.splitlines() if not row.split()[3].startswith("Z")]
    found = {int(pid) for pid, _, group in table if int(group) == pgid}
    grew = True
    while grew:
        more = {int(pid) for pid, ppid, _ in table if int(ppid) in found} - found
        found |= more
        grew = bool(more)
    return found


@pytest.fixture(scope="module")
def ray_head() -> Iterator[dict[str, str]]:
    """`ray start --head` on 127.0.0.1: free ports, its own temp dir (short: Ray's socket paths
    must fit in 107 bytes), Ray's token authentication on with a token of this test's. Yields
    the address and the token file; stops only this head's processes."""
    tmp = Path(tempfile.mkdtemp(prefix="kdray-", dir="/tmp"))
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    port = free_port()
    env = _clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    cmd = [
        str(RAY),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        "--num-gpus=0",
        f"--temp-dir={tmp / 'ray'}",
        f"--dashboard-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        "--disable-usage-stats",
    ]
    # its own session: every daemon `ray start` leaves behind is in this process group
    started = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    pgid = started.pid
    try:
        log, _ = started.communicate(timeout=180)
        assert started.returncode == 0, log[-3000:]
        yield {"address": f"127.0.0.1:{port}", "token_path": str(token)}
    finally:
        for pid in _processes(pgid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not _processes(pgid), 30, "the head's processes to exit", every=0.5)
        shutil.rmtree(tmp, ignore_errors=True)


def _study(folder: Path) -> Path:
    path = folder / "study.yaml"
    data = {"experiment": "default", "space": {"loss.name": ["none", "vanilla"]}, "seeds": [0]}
    path.write_text(yaml.safe_dump(data))
    return path


def _sweep(study: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline", "sweep", str(study), "--dataset", "synthetic-wound"]
    cmd += [*TINY, "--docs", str(study.parent / "docs")]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_sweep_on_a_ray_cluster_with_an_mlflow_server(ray_head, tmp_path, synth_wound, kdsweep_cache):
    relative = os.path.relpath(synth_wound, REPO)  # as a user's *_ROOT: relative to where they run
    base = _clean_env(KDSWEEP_CACHE=str(kdsweep_cache), SYNTHETIC_WOUND_ROOT=relative)
    study = _study(tmp_path)

    # Without RAY_AUTH_MODE=token the cluster refuses the client: one line saying what to set,
    # exit 2, and nothing written to the store (a sqlite file that must not even be created).
    db = tmp_path / "refused.db"
    refused = _sweep(
        study, {**base, "RAY_ADDRESS": ray_head["address"], "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    )
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    errors = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), refused.stderr[-3000:]
    assert "requires token authentication: export RAY_AUTH_MODE=token" in errors[0]
    assert not db.exists()

    with mlflow_server(tmp_path / "server") as uri:
        env = {
            **base,
            "RAY_ADDRESS": ray_head["address"],
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": ray_head["token_path"],
            "MLFLOW_TRACKING_URI": uri,
        }
        done = _sweep(study, env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "1 teacher(s) trained" in done.stdout
        client = MlflowClient(uri)
        (parent,) = runs_by_stage(client, "sweep")
        teachers, students = runs_by_stage(client, "teacher"), runs_by_stage(client, "student")
        assert len(teachers) == 1 and len(students) == 2  # the teacher trained once, then reused
        for run in [parent, *teachers, *students]:
            assert run.info.status == "FINISHED", (run.info.run_name, run.data.tags.get("failure_reason"))
        for run in [*teachers, *students]:
            assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert run.data.tags["node"].startswith(socket.gethostname())  # the node that ran it
            # the root was resolved in the driver, not in the job's own working directory
            assert run.data.params["dataset.root"] == str(synth_wound)
        assert {s.data.tags["teacher_run_id"] for s in students} == {teachers[0].info.run_id}
        # artifacts travel through the server (proxied), not a shared disk
        arts = {a.path for a in client.list_artifacts(students[0].info.run_id, "student")}
        assert arts == {"student/model.pt"}
        assert teachers[0].info.artifact_uri.startswith("mlflow-artifacts:")
        assert any((tmp_path / "server" / "artifacts").rglob("model.pt"))
        # the sweep ended by regenerating the documents from the server's database
        text = (tmp_path / "docs" / "loss_explore.md").read_text()
        assert text.startswith(f"<!-- Generated by `make report` from {uri}")
        assert "| `synthetic-wound-cross_attention-vanilla-s0` | vanilla |" in text


def test_unreachable_cluster_is_one_line_and_writes_nothing(tmp_path, synth_wound):
    db = tmp_path / "mlflow.db"
    env = _clean_env(
        RAY_ADDRESS=f"127.0.0.1:{free_port()}",  # nothing listens there
        MLFLOW_TRACKING_URI=f"sqlite:///{db}",
        SYNTHETIC_WOUND_ROOT=str(synth_wound),
    )
    done = _sweep(_study(tmp_path), env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: cannot reach the Ray cluster at")
    assert "ray start --head --port" in done.stderr
    assert not db.exists()


def test_a_node_without_the_dataset_names_itself_and_the_path(tmp_path):
    from pipeline.sweeps.cluster import node, require_dataset

    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        require_dataset("synthetic-wound", str(missing))
    message = str(info.value)
    assert message.startswith(f"node {node()}: dataset 'synthetic-wound' not found at {missing}")
    assert "every node needs the dataset at this path" in message
    require_dataset("synthetic-wound", str(tmp_path))  # present: no error


def test_job_environment_has_absolute_roots_and_the_store(monkeypatch, tmp_path):
    from pipeline.sweeps.cluster import job_env

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WOUND_ROOT", "data/wound")
    monkeypatch.setenv("KDSWEEP_CACHE", "cache")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/home/someone/.ray/token")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = job_env()
    assert env["WOUND_ROOT"] == str(tmp_path / "data" / "wound")
    assert env["KDSWEEP_CACHE"] == str(tmp_path / "cache")
    assert env["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN_PATH" not in env
    assert env["MLFLOW_TRACKING_URI"].startswith(f"sqlite:///{REPO / 'mlruns' / 'mlflow.db'}")
