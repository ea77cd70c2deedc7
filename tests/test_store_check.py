"""The commands that write to MLflow reach the store first (pipeline.tracking.reach): a server
that is down, or a store folder that cannot be written, is one line naming the store (never its
credentials) and what to do, before Ray, data or torch. Real stores, real sockets and servers:
a closed port for a down server, a listening socket that never answers, a real `mlflow server`."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.errors import TrackingError
from pipeline.tracking import check_store
from support import free_port, mlflow_server

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "mlflow", "ray", "transformers", "timm", "sklearn")


def _cli_in_fresh_interpreter(args: list[str], uri: str) -> dict:
    """`python -m pipeline ARGS` with MLFLOW_TRACKING_URI=uri, in a fresh interpreter that also
    reports which heavy libraries it had imported when the command returned."""
    code = (
        "import contextlib, io, json, sys\n"
        "from pipeline.__main__ import main\n"
        "err, out = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):\n"
        f"    rc = main({args!r})\n"
        f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(json.dumps({'rc': rc, 'stderr': err.getvalue(), 'stdout': out.getvalue(), 'loaded': loaded}))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [
        # the data does not exist either: the store is checked before the data is
        ["sweep", "loss", "--dataset", "wound", "dataset.root=/nowhere"],
        ["run", "default", "dataset.root=/nowhere"],
    ],
    ids=["sweep", "run"],
)
def test_a_down_server_is_one_line_before_any_work_and_without_its_credentials(args):
    port = free_port()  # bound, then closed: nothing listens there
    result = _cli_in_fresh_interpreter(args, f"http://kd-user:s3cret-token@127.0.0.1:{port}/?token=abc")
    assert result["rc"] == 2 and result["stdout"] == ""
    assert result["stderr"] == (
        f"error: cannot reach the MLflow tracking server at http://127.0.0.1:{port}/ (connection refused): "
        "start it (make mlflow-server) or unset MLFLOW_TRACKING_URI to use the local store mlruns/\n"
    )
    assert result["loaded"] == []  # no torch, Ray or MLflow was imported to find out


def test_no_track_runs_do_not_ask_the_server():
    result = _cli_in_fresh_interpreter(
        ["run", "default", "--no-track", "loss.temperature=0"], f"http://127.0.0.1:{free_port()}"
    )
    assert result["rc"] == 2  # the config's own mistake, not the server's absence
    assert result["stderr"].startswith("error: override 'loss.temperature=0'")


def test_check_store_command_says_ok_for_a_writable_store_and_creates_nothing(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    result = _cli_in_fresh_interpreter(["check-store"], f"sqlite:///{store / 'mlflow.db'}?timeout=60")
    assert result["rc"] == 0 and result["stdout"].startswith("MLflow store ok: sqlite:///")
    assert list(store.iterdir()) == [] and result["loaded"] == []


def test_a_server_that_accepts_but_never_answers_is_reported_not_waited_for():
    with socket.socket() as listener:  # the kernel accepts connections; nobody ever answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(TrackingError, match=r"\(no answer in \d+ s\): start it"):
            check_store(uri)


@contextmanager
def _http_server(status: int) -> Iterator[str]:
    """A real HTTP server answering every GET with `status`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args) -> None:  # keep pytest's output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "message"),
    [(404, "is this an MLflow tracking server"), (503, "it answered HTTP 503")],
)
def test_a_server_that_is_not_a_healthy_mlflow_is_reported(status, message):
    with _http_server(status) as uri, pytest.raises(TrackingError, match=message):
        check_store(uri)


def test_a_server_that_refuses_the_login_says_which_variables_to_set(monkeypatch):
    """A server that answers 401 (as MLflow's basic-auth app does to a missing or wrong login):
    one line naming the variables, never their values. tests/test_cluster.py does the same
    against a real basic-auth server."""
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    with _http_server(401) as uri:
        with pytest.raises(
            TrackingError, match="asks for a login \\(HTTP 401\\): set MLFLOW_TRACKING_USERNAME"
        ):
            check_store(uri)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
        with pytest.raises(TrackingError, match="refused the login \\(HTTP 401\\)") as info:
            check_store(uri)
        assert "not-the-password" not in str(info.value) and "someone" not in str(info.value)


def test_a_real_mlflow_server_passes(tmp_path):
    with mlflow_server(tmp_path) as uri:
        check_store(uri)
        check_store(uri + "/")


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder nobody may create files in: permission bits for a user, /sys for root (whose
    permission checks pass everywhere else)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("sqlite:///{file}/sub/mlflow.db", "{file} is a file, so {file}/sub cannot be created"),
        ("file://{file}/mlruns", "{file} is a file, so {file}/mlruns cannot be created"),
        ("{file}", "{file} is a file, not a folder"),
        ("sqlite:///{ro}/mlflow.db", "cannot write in {ro}: permission denied"),
        ("sqlite:///{ro}/new/mlflow.db", "cannot write in {ro}: permission denied, so {ro}/new cannot be"),
        ("file://{ro}/mlruns", "cannot write in {ro}: permission denied"),
    ],
)
def test_a_local_store_that_cannot_be_written_is_one_line(tmp_path, store, message):
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    ro = _unwritable_folder(tmp_path)
    uri = store.format(file=file, ro=ro)
    with pytest.raises(TrackingError) as err:
        check_store(uri)
    text = str(err.value)
    assert text.startswith(f"cannot write to the MLflow store at {uri} ({message.format(file=file, ro=ro)}")
    assert "\n" not in text


def test_a_missing_folder_that_can_be_created_is_fine_and_left_uncreated(tmp_path):
    check_store(f"sqlite:///{tmp_path / 'new' / 'deeper' / 'mlflow.db'}")
    check_store((tmp_path / "mlruns").as_uri())
    assert list(tmp_path.iterdir()) == []  # MLflow creates what it needs; the check creates nothing
