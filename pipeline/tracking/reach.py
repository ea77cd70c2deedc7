"""Can this command write to its MLflow store? `python -m pipeline run` and `sweep` (and the
Makefile's run, sweep and demo targets, through `python -m pipeline check-store`) ask first,
before Ray starts, data loads or torch is imported: MLflow's own client retries an unreachable
server for minutes and then raises its raw exception.

Cheap on the happy path and without importing MLflow: one HTTP GET of a server's ``/health``
(its REST API when /health is not found; a 401 counts as reachable), a TCP connect
to a SQL server, or creating and removing a probe file in a local store's folder. Messages
name the store without its credentials (`public_uri`).
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from core.errors import TrackingError
from pipeline.tracking.store import public_uri, sqlite_path, tracking_uri

TIMEOUT_S = 3.0  # one connection attempt; the whole check answers within TIMEOUT_S + 1 s
SQL_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}


def check_store(uri: str | None = None) -> None:
    """Raise TrackingError (one line: the store, why, what to do) unless the MLflow store at
    `uri` (default: `tracking_uri()`) answers or, for a local one, can be written. A scheme
    that cannot be checked cheaply (databricks, a plugin's) passes: MLflow reports it."""
    uri = uri or tracking_uri()
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        why = _answer(_server_reason, uri)
        what = "the MLflow tracking server"
        todo = "start it (make mlflow-server)"
        login = _answer(_login_reason, uri) if why is None else None
        if login is not None:  # it answers, but not to this client's login
            raise TrackingError(f"the MLflow tracking server at {public_uri(uri)} {login}")
    elif scheme.split("+")[0] in SQL_PORTS:
        why = _answer(_sql_reason, uri)
        what, todo = "the MLflow store's database server", "start it"
    elif scheme == "sqlite":
        db = sqlite_path(uri)  # None: an in-memory database, nothing to check
        why = _sqlite_reason(Path(os.path.abspath(db))) if db is not None else None
        what, todo = "the MLflow store", "choose a writable folder"
    elif scheme in ("file", "") or len(scheme) == 1:  # a plain path (a Windows drive letter too)
        path = urllib.request.url2pathname(urllib.parse.urlsplit(uri).path) if scheme == "file" else uri
        why = _folder_reason(Path(os.path.abspath(path)), store=True)
        what, todo = "the MLflow store", "choose a writable folder"
    else:
        return
    if why is None:
        return
    server = todo.startswith("start")
    if os.environ.get("MLFLOW_TRACKING_URI"):
        hint = f"{todo} or unset MLFLOW_TRACKING_URI to use the local store mlruns/"
    elif server:  # named by the caller, not by the environment
        hint = todo
    else:  # the default store, mlruns/
        hint = "make that folder writable or set MLFLOW_TRACKING_URI to another store"
    verb = "cannot reach" if server else "cannot write to"
    raise TrackingError(f"{verb} {what} at {public_uri(uri)} ({why}): {hint}")


def _answer(probe, uri: str) -> str | None:
    """`probe(uri)` (the reason it failed, or None) on a thread given TIMEOUT_S + 1 s in all:
    a socket timeout does not bound the host name lookup."""
    found: list[str | None] = []
    worker = threading.Thread(target=lambda: found.append(probe(uri)), daemon=True)
    worker.start()
    worker.join(TIMEOUT_S + 1)
    return found[0] if found else f"no answer in {TIMEOUT_S + 1:g} s"


def _reason(e: BaseException) -> str:
    """Why a connection failed, in a few words (never the URL: it may hold credentials)."""
    e = getattr(e, "reason", e) if isinstance(e, urllib.error.URLError) else e
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, TimeoutError | socket.timeout):
        return f"no answer in {TIMEOUT_S:g} s"
    if isinstance(e, socket.gaierror):
        return "host name not found"
    if isinstance(e, ssl.SSLError):
        return f"TLS failed: {e.reason or type(e).__name__}"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[0].lower() + e.strerror[1:]
    return type(e).__name__


def _base(uri: str) -> str:
    """The server's address without userinfo, query or fragment, and without a trailing slash."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _server_reason(uri: str) -> str | None:
    """None when the server answers like MLflow: /health, or (a server or proxy without it)
    the REST API; 401/403 count as answers (MLflow's client explains a refused login)."""
    base = _base(uri)  # no credentials sent: /health and this probe need none
    status = 0
    for path in ("/health", "/api/2.0/mlflow/experiments/search?max_results=1"):
        try:
            with urllib.request.urlopen(base + path, timeout=TIMEOUT_S) as answer:
                status = answer.status
        except urllib.error.HTTPError as e:
            status = e.code
        except (OSError, ValueError) as e:  # URLError is an OSError; ValueError: a malformed port
            return _reason(e)
        if status < 500 and status != 404:
            return None
    if status == 404:
        return "HTTP 404 on /health and on the REST API: is this an MLflow tracking server?"
    return f"it answered HTTP {status}"


def _login_reason(uri: str) -> str | None:
    """None when the REST API answers this client with its login (MLFLOW_TRACKING_USERNAME /
    MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN), as MLflow's client will send it; else
    what to fix. A server without logins answers anyone. Only the status is read: neither the
    login nor the server's answer is repeated."""
    base = _base(uri)  # the login goes in a header, never in the URL
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    headers = {}
    if user and password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]
    request = urllib.request.Request(
        base + "/api/2.0/mlflow/experiments/search?max_results=1", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S):
            return None
    except urllib.error.HTTPError as e:
        status = e.code
    except (OSError, ValueError):  # reached a moment ago: MLflow's client reports what follows
        return None
    if status == 401 and not headers:
        return (
            "asks for a login (HTTP 401): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "to a user of that server"
        )
    if status == 401:
        return (
            "refused the login (HTTP 401): check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "(or MLFLOW_TRACKING_TOKEN)"
        )
    if status == 403:
        return "refused this user access to its experiments (HTTP 403): ask its admin for READ at least"
    return None


def _sql_reason(uri: str) -> str | None:
    parts = urllib.parse.urlsplit(uri)
    try:
        port = parts.port or SQL_PORTS[parts.scheme.split("+")[0].lower()]
        with socket.create_connection((parts.hostname or "localhost", port), timeout=TIMEOUT_S):
            return None
    except (OSError, ValueError) as e:
        return _reason(e)


def _sqlite_reason(db: Path) -> str | None:
    if db.is_dir():
        return f"{db} is a folder, not a database file"
    if db.exists() and not os.access(db, os.W_OK):
        return f"{db} is read-only"
    return _folder_reason(db.parent)  # SQLite writes its journal beside the database


def _folder_reason(folder: Path, store: bool = False) -> str | None:
    """Why nothing can be written in `folder` (created if missing, as MLflow will), or None."""
    if store and folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, so {folder} cannot be created"
    # try it: permission bits say nothing for root, a read-only mount or /sys
    probe = existing / f".kdsweep-write-check-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as e:
        gone = "" if existing == folder else f", so {folder} cannot be created"
        return f"cannot write in {existing}: {(e.strerror or type(e).__name__).lower()}{gone}"
    return None
