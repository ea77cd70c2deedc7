"""The MLflow store: where it is, the client on it, an experiment per dataset, the UI's links.

MLFLOW_TRACKING_URI, default ``sqlite:///<project>/mlruns/mlflow.db`` with artifacts in
``<project>/mlruns/artifacts`` (for any sqlite URI: an ``artifacts`` folder beside the .db).
An MLflow experiment per dataset (``kdsweep-<dataset>``). Every other part of pipeline.tracking
builds on this one and it imports none of them: the package's bottom layer.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in logs

# MLflow (~1.5 s to import) is imported where it is used: `make report` on a SQL store reads
# MLflow's tables directly (pipeline.tracking.read) and needs no MLflow.
if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# MLflow 3's UI opens an experiment in its GenAI view unless this tag says model training
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def enabled() -> bool:
    """False under KDSWEEP_TRACKING=off (``python -m pipeline run --no-track``): runs are not
    recorded and nothing is reused from the store (a scratch run, and the baseline of the
    tracking-overhead benchmark)."""
    return os.environ.get("KDSWEEP_TRACKING", "on").strip().lower() not in ("off", "0", "false", "no")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI or the embedded sqlite store. A sqlite URI gets a 60 s busy timeout
    (and the database WAL journaling, see `client`): parallel trials wait, never fail locked."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and "?" not in uri:
        uri += "?timeout=60"
    return uri


def public_uri(uri: str) -> str:
    """`uri` safe to print: no ``user:password@`` and no query (tokens travel in either)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:  # a plain path
        return uri
    # by hand: urlunsplit turns sqlite:////abs into sqlite://abs
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, path = rest[:cut].rpartition("@")[2], rest[cut:]
    return f"{scheme}://{netloc}{path.split('?')[0].split('#')[0]}"


def display_uri() -> str:
    """The store as the user named it, for documents and logs: MLFLOW_TRACKING_URI as written
    (no credentials, no query parameters), or the default store relative to the project
    (``sqlite:///mlruns/mlflow.db``), so that no machine's absolute path is baked in."""
    given = os.environ.get("MLFLOW_TRACKING_URI")
    if not given:
        return "sqlite:///mlruns/mlflow.db"
    uri = public_uri(given)
    db = sqlite_path(uri)
    if db is not None and db.is_absolute() and db.resolve().is_relative_to(PROJECT_ROOT):
        return f"sqlite:///{db.resolve().relative_to(PROJECT_ROOT)}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (query parameters dropped), else None."""
    return Path(uri.removeprefix("sqlite:///").split("?")[0]) if uri.startswith("sqlite:///") else None


_CLIENTS: dict[str, MlflowClient] = {}  # one per URI: building one costs ~70 ms (a new engine)


def client() -> MlflowClient:
    """The client on `tracking_uri()`, cached per URI (a new one builds a new engine). A sqlite
    store's schema is created on first use and its journal switched to WAL, so that readers no
    longer block the writer of a parallel trial."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    if uri in _CLIENTS:
        mlflow.set_tracking_uri(uri)
        return _CLIENTS[uri]
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    # a new sqlite store's schema is made here; MLflow's INFO lines about it say nothing to a user
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    c = MlflowClient(uri)
    if db is not None:  # first client for this database (cached below)
        c.search_experiments(max_results=1)  # creates the schema on first use
        with sqlite3.connect(db, timeout=60) as con:  # readers no longer block the writer
            con.execute("PRAGMA journal_mode=WAL")
    _CLIENTS[uri] = c
    return c


def client_at(uri: str) -> MlflowClient:
    """A plain client on the store at `uri`, whatever MLFLOW_TRACKING_URI says: for reading a
    store another process wrote (a benchmark's child), without `client`'s set-up."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def client_class() -> type[MlflowClient]:
    """MLflow's client class itself, for code that instruments every client call (the
    tracking-overhead benchmark times them), so that it need not import MLflow."""
    from mlflow.tracking import MlflowClient

    return MlflowClient


def sql_tables() -> dict[str, Any]:
    """MLflow's own SQLAlchemy tables of a SQL store by name (runs, tags, params, metrics,
    latest_metrics): the schema `pipeline.tracking.read` reads, for code that fills a store in
    bulk (the report-scaling benchmark) without importing MLflow itself."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag

    models = (SqlRun, SqlTag, SqlParam, SqlMetric, SqlLatestMetric)
    return {m.__tablename__: m.__table__ for m in models}


def experiment_id(c: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created (artifacts beside a sqlite database, tagged as model
    training) on first use; an older store's experiment gets the tag on the way."""
    import mlflow

    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:  # a store from before the tag
            c.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return exp.experiment_id
    db = sqlite_path(tracking_uri())
    location = None
    if db is not None:  # keep artifacts beside the database, not in the CWD
        location = (db.parent / "artifacts").resolve().as_uri()
    try:
        return c.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING})
    except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel process
        return c.get_experiment_by_name(name).experiment_id


def ui_base() -> str:
    """Where this store's MLflow UI is: the tracking server itself for an http(s) URI, else
    where `make ui` serves the local store (KDSWEEP_UI_HOST / KDSWEEP_UI_PORT, which the
    Makefile sets from its HOST and PORT; 127.0.0.1:5000 by default)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith(("http://", "https://")):
        return public_uri(uri).rstrip("/")  # links are printed and written into documents
    host = os.environ.get("KDSWEEP_UI_HOST") or "127.0.0.1"
    return f"http://{host}:{os.environ.get('KDSWEEP_UI_PORT') or '5000'}"


def runs_link(experiment_id: str) -> str:
    """The experiment's runs page in the UI's "Model training" view (MLflow 3 opens an
    experiment in its GenAI view otherwise, where runs are not listed)."""
    return f"{ui_base()}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def open_hint(experiment: str) -> str:
    """What to open to see `experiment`'s runs: the link, and `make ui` first for a local store."""
    link = runs_link(experiment_id(client(), experiment))
    if tracking_uri().startswith(("http://", "https://")):
        return f"the runs in the MLflow UI: {link}"
    return f"the runs in the MLflow UI (start it with `make ui`): {link}"


def experiment_links(prefix: str = "kdsweep-") -> list[tuple[str, str]]:
    """(name, runs link) of every active experiment whose name starts with `prefix`, tagging
    those of an older store as model-training experiments on the way."""
    c = client()
    out = []
    for exp in c.search_experiments(filter_string=f"name LIKE '{prefix}%'"):
        out.append((exp.name, runs_link(experiment_id(c, exp.name))))
    return sorted(out)


def git_commit() -> str:
    """HEAD of the project's checkout, tagged on every run ("unknown" outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
