"""Session fixtures for the README's "Scaling out" path, shared by tests/test_cluster.py and
tests/test_mlflow_ui.py: one real Ray head (`ray start --head`, token authentication on), one
real `mlflow server`, and ONE sweep through the CLI with RAY_ADDRESS and MLFLOW_TRACKING_URI.
Starting these takes about a minute on 2 cores and the sweep another: both test files read the
same sweep rather than run one each. The fixtures stop exactly the processes they started."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from support import add_user, free_port, mlflow_server, wait_for

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
TINY = [  # tiny_overrides without dataset.root: the root comes from WOUND_ROOT
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


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Ray address or authentication, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def processes(pgid: int) -> set[int]:
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


def loss_study(folder: Path) -> Path:
    """Two configurations (none, vanilla): one teacher trained, then reused by the KD student."""
    path = folder / "study.yaml"
    data = {
        "experiment": "default",
        "space": {"loss.name": ["none", "vanilla"]},
        "metric": "dev/avg_f1",
        "mode": "max",
        "seeds": [0],
    }
    path.write_text(yaml.safe_dump(data))
    return path


def sweep(study: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    """`python -m pipeline sweep STUDY --dataset wound TINY EXTRA` as a user types it (what
    `make sweep-loss DATASET=wound` runs), WOUND_ROOT naming a folder in the group's layout."""
    cmd = [sys.executable, "-m", "pipeline", "sweep", str(study), "--dataset", "wound"]
    cmd += [*TINY, *extra, "--docs", str(study.parent / "docs")]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def ray_env(token: Path) -> dict[str, str]:
    """The environment of a `ray start` and of its clients: token authentication with `token`;
    no workers prestarted for the first driver (Ray Tune's trial actors never take them: their
    runtime_env differs, see pipeline.sweeps.cluster.connect; each costs CPU for nothing)."""
    return clean_env(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_prestart_worker_first_driver="0"
    )


@contextmanager
def ray_node(temp: Path, token: Path, num_cpus: int, address: str = "", port: int = 0) -> Iterator[int]:
    """`ray start` on 127.0.0.1: a head listening on `port` (no `address`), or a node joining
    `address`, with `num_cpus` CPUs and its own temp dir (short: Ray's socket paths must fit in
    107 bytes). Yields its process group: the node's daemons and, as their descendants, its
    workers (`processes`). Stops exactly those processes."""
    cmd = [str(RAY), "start", "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}", "--num-gpus=0"]
    cmd += [f"--address={address}"] if address else ["--head", f"--port={port}", "--include-dashboard=false"]
    # the dashboard is off: nothing here reads it, and it costs CPU all session long
    cmd += [f"--temp-dir={temp}", f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"]
    # its own session: every daemon `ray start` leaves behind is in this process group
    started = subprocess.Popen(
        cmd,
        env=ray_env(token),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    pgid = started.pid
    try:
        log, _ = started.communicate(timeout=180)
        assert started.returncode == 0, log[-3000:]
        yield pgid
    finally:
        stop(pgid)


def stop(pgid: int) -> None:
    """SIGKILL every process of the group and their descendants; wait until they are gone."""
    for pid in processes(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not processes(pgid), 30, "a Ray node's processes to exit", every=0.5)


def token_file(folder: Path) -> Path:
    token = folder / "token"
    token.write_text(secrets.token_hex(32))
    return token


@pytest.fixture(scope="session")
def ray_head() -> Iterator[dict[str, str]]:
    """A Ray head (`ray_node`) for the session, Ray's token authentication on with a token of
    its own. Yields the address, the token file and its temp dir."""
    tmp = Path(tempfile.mkdtemp(prefix="kdray-", dir="/tmp"))
    token, port = token_file(tmp), free_port()
    try:
        with ray_node(tmp / "ray", token, num_cpus=2, port=port):
            yield {"address": f"127.0.0.1:{port}", "token_path": str(token), "temp": str(tmp / "ray")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Served:
    """The shared sweep: the server's URI, the sweep's stdout and stderr, its folder
    (study.yaml, docs/, server/ with the artifacts), the dataset root it read, and the login
    it used (the server runs MLflow's basic-auth app; `login` holds the client's variables)."""

    uri: str
    stdout: str
    folder: Path
    root: Path
    login: dict[str, str]
    stderr: str = ""
    ray_temp: str = ""


@pytest.fixture(scope="session")
def served_sweep(ray_head, tmp_path_factory, synth_wound) -> Iterator[Served]:
    """One loss sweep (none, vanilla) on the Ray head into a real `mlflow server` (artifacts
    proxied), system metrics sampled every second (a tiny trial lasts a few); dataset `wound` on
    the synthetic Wound-1-0 folder (the group's CSV layout), its root given relative to where
    the user runs, as WOUND_ROOT."""
    tmp = tmp_path_factory.mktemp("served")
    study = loss_study(tmp)
    relative = os.path.relpath(synth_wound, REPO)
    admin = secrets.token_urlsafe(18)
    with mlflow_server(tmp / "server", admin_password=admin) as uri:
        # a user of its own (not the admin), as on a shared tracking server
        login = {
            "MLFLOW_TRACKING_USERNAME": "kdsweep-ci",
            "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(18),
        }
        add_user(uri, admin, login["MLFLOW_TRACKING_USERNAME"], login["MLFLOW_TRACKING_PASSWORD"])
        env = clean_env(
            **login,
            KDSWEEP_CACHE=str(tmp / "cache"),
            WOUND_ROOT=relative,
            RAY_ADDRESS=ray_head["address"],
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=ray_head["token_path"],
            MLFLOW_TRACKING_URI=uri,
        )
        done = sweep(study, env, "tracking.system_metrics_interval=1")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield Served(uri, done.stdout, tmp, synth_wound, login, done.stderr, ray_head["temp"])
