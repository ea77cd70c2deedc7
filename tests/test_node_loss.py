"""A node lost mid-sweep (the README's "Scaling out": a trial whose worker or node dies ends
FAILED with the cause and runs again once): two real Ray nodes on this machine, a head and a
second node (`ray start --address=...`), one CPU each, so the two students of a sweep run one
on each; the second node's processes are killed while its student trains. That run ends FAILED
`node died: ...`, the trial reruns on the head and finishes, and the sweep ends with exactly
one FINISHED run per configuration. Only the processes this test started are stopped."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from served import processes, ray_env, ray_node, stop, token_file

from support import free_port, runs_by_stage, sqlite_store, tiny_overrides, wait_for

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_a_node_lost_mid_sweep_fails_its_run_and_the_trial_reruns(tmp_path, synth_wound, kdsweep_cache):
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
