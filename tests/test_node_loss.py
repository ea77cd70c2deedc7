"""A node lost mid-sweep (the README's "Scaling out": a trial whose worker or node dies ends
FAILED with the cause and runs again once): two real Ray nodes on this machine, a head and a
second node (`ray start --address=...`), one CPU each, so the two students of a sweep run one
on each; the second node's processes are killed while its student trains. That run ends FAILED
`node died: ...`, the trial reruns on the head and finishes, and the sweep ends with exactly
one FINISHED run per configuration, and its documents are those of the same sweep undisturbed
but for timing and the failed attempt they list. Only the processes this test started are stopped."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from served import processes, ray_env, ray_node, stop, token_file

from support import free_port, runs_by_stage, sqlite_store, tiny_overrides, wait_for

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_a_node_lost_mid_sweep_fails_its_run_and_the_trial_reruns(
    tmp_path, synth_wound, kdsweep_cache, monkeypatch, local_ray
):
    study = tmp_path / "study.yaml"
    space = {"loss.name": ["none", "vanilla"]}
    study.write_text(
        yaml.safe_dump({"experiment": "default", "space": space, "seeds": [0], "max_concurrent": 2})
    )
    uri = sqlite_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    temp = Path(tempfile.mkdtemp(prefix="kdn-", dir="/tmp"))  # short: Ray's socket paths
    token, port = token_file(temp), free_port()
    address = f"127.0.0.1:{port}"
    env = {
        **ray_env(token),
        "RAY_ADDRESS": address,
        "MLFLOW_TRACKING_URI": uri,
        "KDSWEEP_CACHE": str(kdsweep_cache),
    }
    # students that train for longer than a worker takes to start: otherwise Tune may run both,
    # one after the other, in the teacher's actor (reused), and none on the second node
    overrides = [*tiny_overrides(synth_wound, epochs=1), "train.student_epochs=25", "train.patience=25"]
    cmd = [sys.executable, "-m", "pipeline", "sweep", str(study), *overrides]
    found: dict[str, str] = {}
    try:
        with (
            ray_node(temp / "head", token, num_cpus=1, port=port),
            ray_node(temp / "n2", token, num_cpus=1, address=address) as node2,
        ):
            driver = subprocess.Popen(
                [*cmd, "--docs", str(tmp_path / "docs")],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:

                def student_on_node2() -> bool:
                    try:
                        students = runs_by_stage(client, "student")
                    except Exception:  # the driver is creating the store's experiment
                        return False
                    mine = processes(node2)
                    for r in students:
                        pid = r.data.tags.get("worker_pid")
                        if r.info.status == "RUNNING" and pid and int(pid) in mine:
                            found["run"], found["name"] = r.info.run_id, r.info.run_name
                            return True
                    return False

                wait_for(student_on_node2, 300, "a student training on the second node", every=0.2)
                stop(node2)  # the node is lost: its raylet, object store and workers, at once
                out, _ = driver.communicate(timeout=600)
            finally:
                if driver.poll() is None:
                    driver.kill()
                if "run" not in found:  # what the sweep said, for the failure
                    print(driver.communicate()[0][-5000:])
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert driver.returncode == 0, out[-3000:]  # every configuration finished in the end
    killed = client.get_run(found["run"])
    assert killed.info.status == "FAILED", killed.data.tags.get("failure_reason")
    assert killed.data.tags["failure_reason"].startswith("node died: "), killed.data.tags["failure_reason"]
    students = runs_by_stage(client, "student")
    assert not [r for r in students if r.info.status == "RUNNING"]
    finished = sorted(r.info.run_name for r in students if r.info.status == "FINISHED")
    assert finished == ["none-s0", "vanilla-s0"]  # exactly one per configuration
    assert sorted(r.info.status for r in students if r.info.run_name == found["name"]) == [
        "FAILED",
        "FINISHED",
    ]
    assert "RETRY" in out and "node died: " in out

    # the same sweep, undisturbed, on this process's Ray (1 CPU a trial, as on the two nodes)
    from pipeline.sweeps.sweep import run_sweep
    from reports.__main__ import build

    calm = tmp_path / "calm"
    calm.mkdir()
    calm_uri = sqlite_store(calm / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", calm_uri)
    run_sweep(str(study), overrides, say=lambda s: None)
    build(calm / "docs")
    disturbed, undisturbed = _documents(tmp_path / "docs", uri), _documents(calm / "docs", calm_uri)
    assert sorted(disturbed) == sorted(undisturbed) and "loss_explore.md" in disturbed
    for name, text in undisturbed.items():
        assert disturbed[name] == text, name
    # what differs: the failed attempt, listed (with its cause) where the undisturbed say "None"
    (failed,) = [
        line
        for line in (tmp_path / "docs" / "loss_explore.md").read_text().splitlines()
        if "node died: " in line
    ]
    assert f"`{found['name']}` | FAILED" in failed


# what two runs of one sweep may not share: run IDs, clock times, latencies, and where the
# store is; everything else (metrics to the last digit, figures, tables) must be equal
_TIMING = [
    (re.compile(r"\b[0-9a-f]{32}\b"), "RUN_ID"),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\+00:00)?"), "TIME"),
    (re.compile(r"\d+\.\d+ \(p90 \d+\.\d+\)"), "LATENCY"),  # a table's "Test infer (ms)" cell
    (re.compile(r"\(\d+\.\d+-\d+\.\d+ ms\)"), "(LATENCY)"),  # the latency spread sentence
]


def _documents(folder: Path, uri: str) -> dict[str, str]:
    """Every generated file, timing fields masked and the Incomplete-runs section left out.
    Figures are compared as bytes."""
    out: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        if path.suffix == ".png":
            out[name] = path.read_bytes().hex()
        elif path.suffix == ".csv":
            frame = pd.read_csv(path).drop(columns=["run_id", "date", "inference_time_ms"])
            out[name] = frame.to_csv(index=False)
        else:
            text = path.read_text().replace(uri, "STORE").split("## Incomplete runs")[0]
            for pattern, mask in _TIMING:
                text = pattern.sub(mask, text)
            out[name] = text
    return out
