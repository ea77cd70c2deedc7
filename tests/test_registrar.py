"""The end of a sweep command: the chosen student is registered by a child process warmed while
the trials ran (pipeline.sweeps.register.Registrar), and the Ray the sweep started is shut down in
the background (pipeline.sweeps.cluster.release_local). Each case runs in a fresh interpreter,
as the sweep command's driver does: one without torch. The successful registration through the
child is checked end to end by the command-line sweep of tests/test_mlflow_ui.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _fresh(code: str, tmp_path: Path) -> dict:
    """Run `code` in a fresh interpreter on a store in tmp_path; it sets `out` (JSON-able)."""
    env_code = (
        "import json, os, sys\n"
        f"os.environ['MLFLOW_TRACKING_URI'] = 'sqlite:///{tmp_path / 'mlflow.db'}'\n"
        + code
        + "\nprint('OUT ' + json.dumps(out))"
    )
    done = subprocess.run(
        [sys.executable, "-c", env_code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("OUT ")][-1][4:])


def test_the_warmed_child_says_a_failed_registration_in_one_line(tmp_path):
    out = _fresh(
        "from pipeline.sweeps import register\n"
        "r = register.Registrar()\n"
        "child = r._child\n"
        "assert child is not None and 'torch' not in sys.modules\n"
        "register._job = lambda *a: {'run_id': 'no-such-run', 'name': 'x', 'tags': {}, 'how': ''}\n"
        "said = []\n"
        "r.start(None, 'toy', [], [], 'parent', said.append)\n"
        "r.finish()\n"
        "out = {'said': said, 'exit': child.returncode, 'torch': 'torch' in sys.modules}\n",
        tmp_path,
    )
    assert len(out["said"]) == 1
    assert out["said"][0].startswith("could not register the chosen student (run no-such-run): ")
    assert out["exit"] == 0  # the failure is said, not raised: the trials are done and recorded
    assert not out["torch"]  # the driver itself never imported torch


def test_a_child_given_no_job_exits_and_a_driver_with_torch_warms_none(tmp_path):
    out = _fresh(
        "from pipeline.sweeps import register\n"
        "r = register.Registrar()\n"
        "child = r._child\n"
        "register._job = lambda *a: None\n"
        "said = []\n"
        "r.start(None, 'toy', [], [], 'parent', said.append)\n"
        "r.finish()\n"
        "import torch\n"
        "out = {'said': said, 'exit': child.returncode, 'warmed': register.Registrar()._child is not None}\n",
        tmp_path,
    )
    assert out["said"] == ["no FINISHED student: no model registered"]
    assert out["exit"] == 0
    assert out["warmed"] is False  # torch already here: registered in-process, no second import


def test_release_local_stops_only_the_ray_this_process_started(tmp_path):
    out = _fresh(
        "import ray\n"
        "from pipeline.sweeps import cluster\n"
        "cluster.connect()\n"
        "own = cluster.release_local()\n"
        "own.join()\n"
        "after_own = ray.is_initialized()\n"
        "ray.init(address='local', include_dashboard=False, num_cpus=1)  # a Ray of the caller's\n"
        "cluster.connect()  # joins it: not this process's to stop\n"
        "theirs = cluster.release_local()\n"
        "out = {'own': own is not None, 'after_own': after_own, 'theirs': theirs is not None,\n"
        "       'still': ray.is_initialized()}\n"
        "ray.shutdown()\n",
        tmp_path,
    )
    assert out == {"own": True, "after_own": False, "theirs": False, "still": True}
