"""Helpers shared by the model and end-to-end tests (not fixtures: plain functions)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow.tracking import MlflowClient


@functools.cache
def _empty_store() -> Path:
    """An empty sqlite store as MLflow makes it (its Default experiment included), made once per
    test process."""
    folder = Path(tempfile.mkdtemp(prefix="kdsweep-empty-store-"))
    atexit.register(shutil.rmtree, folder, True)
    db = folder / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")
    client.search_experiments(max_results=1)  # MLflow creates the schema on first use
    client._tracking_client.store.engine.dispose()  # nothing holds the file while it is copied
    return db


def sqlite_store(db: Path) -> str:
    """`sqlite:///DB` for a new store that starts as a copy of `_empty_store`: MLflow builds a
    new database through its ~50 schema migrations, ~2 s of CPU each time, ~50 stores a suite.
    Only where the test is not about how a store comes to exist (those keep a bare path)."""
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_empty_store(), db)
    return f"sqlite:///{db}"


def tiny_overrides(root: Path, epochs: int = 2) -> list[str]:
    """The tiny profile at 32 px on a small synthetic dataset: a run takes seconds."""
    return [
        f"dataset.root={root}",
        "teacher.vision.image_size=32",
        "teacher.vision.kwargs.img_size=32",
        "student.vision.image_size=32",
        "student.vision.kwargs.img_size=32",
        f"train.teacher_epochs={epochs}",
        f"train.student_epochs={epochs}",
        "train.batch_size=16",
        "train.latency_runs=5",
        "train.device=cpu",
    ]


def runs_by_stage(client: MlflowClient, stage: str) -> list:
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, filter_string=f"tags.stage = '{stage}'", max_results=1000)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, every: float = 1.0) -> None:
    import time

    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


# MLflow's job runner (GenAI evaluation jobs, trace roll-ups): five more processes that poll
# the store; kdsweep uses none of it (`make ui` and `make mlflow-server` turn it off too)
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


AUTH_INI = """[mlflow]
default_permission = READ
database_uri = sqlite:///{db}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = true
auth_cache_ttl_seconds = 60
"""


def add_user(uri: str, admin_password: str, username: str, password: str) -> None:
    """A user of the basic-auth server at `uri`, created by its admin through the REST API."""
    import base64
    import json
    import urllib.request

    basic = base64.b64encode(f"admin:{admin_password}".encode()).decode()
    req = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/users/create",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {basic}"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert json.loads(r.read())["user"]["username"] == username


@contextmanager
def mlflow_server(folder: Path, admin_password: str = "") -> Iterator[str]:
    """A real `mlflow server` (sqlite behind it, artifacts proxied into `folder`) on a free
    port; its URI. With `admin_password`, MLflow's basic-auth app (`--app-name basic-auth`,
    mlflow[auth]): its users in folder/basic_auth.db, user `admin` with that password; the
    password reaches the server by environment only. Stopped (its process group only) on exit."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            sqlite_store(folder / "server.db"),
            "--serve-artifacts",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            *(["--app-name", "basic-auth"] if admin_password else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **SERVER_ENV, **_auth_env(folder, admin_password)},
    )
    uri = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200
            except OSError:
                return False

        wait_for(healthy, 120, "mlflow server")
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _auth_env(folder: Path, admin_password: str) -> dict[str, str]:
    """The basic-auth app's settings: its config file, a Flask secret, the admin's password."""
    import secrets

    if not admin_password:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    ini = folder / "basic_auth.ini"
    ini.write_text(AUTH_INI.format(db=folder / "basic_auth.db"))
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
    }


def sweep_cli(
    tmp_path: Path, cache: Path, study: Path, overrides: list[str]
) -> tuple[list[str], dict[str, str], str, Path]:
    """`python -m pipeline sweep STUDY OVERRIDES --docs tmp/docs` as a user runs it, into a
    sqlite store in `tmp_path`, offline: (command, environment, store URI, docs folder)."""
    import os
    import sys

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "KDSWEEP_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    docs = tmp_path / "docs"
    cmd = [sys.executable, "-m", "pipeline", "sweep", str(study), *overrides, "--docs", str(docs)]
    return cmd, env, uri, docs


def kill_after_first_student(cmd: list[str], env: dict, client: MlflowClient, timeout: float) -> None:
    """Start a sweep command from the repository and SIGKILL it, with the Ray processes it
    started (its process group), once its first student run is FINISHED."""
    import os
    import signal
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    driver = subprocess.Popen(
        cmd, cwd=repo, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def one_finished() -> bool:
            try:
                return any(r.info.status == "FINISHED" for r in runs_by_stage(client, "student"))
            except Exception:  # the store may not exist yet
                return False

        wait_for(one_finished, timeout, "a FINISHED student run")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
