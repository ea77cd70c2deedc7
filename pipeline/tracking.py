"""The only module that talks to MLflow.

Store: MLFLOW_TRACKING_URI, default ``sqlite:///<project>/mlruns/mlflow.db`` with artifacts in
``<project>/mlruns/artifacts`` (for any sqlite URI: an ``artifacts`` folder beside the .db).
An MLflow experiment per dataset (``kdsweep-<dataset>``). Runs are created through
`MlflowClient` (no global active run), so several can be open in one process.

Status contract: a run that ends normally is FINISHED; an exception marks it FAILED with the
reason in the tag ``failure_reason``; Ctrl-C (KeyboardInterrupt), SIGTERM or a scheduler's stop
(a KeyboardInterrupt whose message is the reason) marks it KILLED.

KDSWEEP_TRACKING=off (``python -m pipeline run --no-track``): runs are not recorded at all and
nothing is reused from the store: a scratch run, and the baseline of the tracking-overhead
benchmark.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in logs

# MLflow (~1.5 s to import) and torch are imported where they are used: `make report` on a SQL
# store reads MLflow's tables directly (Reader) and needs neither.
if TYPE_CHECKING:
    import torch
    from mlflow.tracking import MlflowClient

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_BATCH = 100  # MLflow's limit of params per log_batch call


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI or the embedded sqlite store. A sqlite URI gets a 60 s busy timeout
    (and the database WAL journaling, see `client`): parallel trials wait, never fail locked."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and "?" not in uri:
        uri += "?timeout=60"
    return uri


def display_uri() -> str:
    """The store as the user named it, for documents and logs: MLFLOW_TRACKING_URI as written
    (no internal query parameters), or the default store relative to the project
    (``sqlite:///mlruns/mlflow.db``), so that no machine's absolute path is baked in."""
    given = os.environ.get("MLFLOW_TRACKING_URI")
    if not given:
        return "sqlite:///mlruns/mlflow.db"
    uri = given.split("?")[0] if given.startswith("sqlite:") else given
    db = sqlite_path(uri)
    if db is not None and db.is_absolute() and db.resolve().is_relative_to(PROJECT_ROOT):
        return f"sqlite:///{db.resolve().relative_to(PROJECT_ROOT)}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (query parameters dropped), else None."""
    return Path(uri.removeprefix("sqlite:///").split("?")[0]) if uri.startswith("sqlite:///") else None


_CLIENTS: dict[str, MlflowClient] = {}  # one per URI: building one costs ~70 ms (a new engine)


def client() -> MlflowClient:
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
    c = MlflowClient(uri)
    if db is not None:  # first client for this database (cached below)
        c.search_experiments(max_results=1)  # creates the schema on first use
        with sqlite3.connect(db, timeout=60) as con:  # readers no longer block the writer
            con.execute("PRAGMA journal_mode=WAL")
    _CLIENTS[uri] = c
    return c


def experiment_id(c: MlflowClient, name: str) -> str:
    import mlflow

    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    db = sqlite_path(tracking_uri())
    location = None
    if db is not None:  # keep artifacts beside the database, not in the CWD
        location = (db.parent / "artifacts").resolve().as_uri()
    try:
        return c.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel process
        return c.get_experiment_by_name(name).experiment_id


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


class RunLog:
    """Logging calls on one open run."""

    def __init__(self, c: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = c, run_id

    def params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _BATCH])

    def metrics(self, values: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in values.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def json(self, obj: Any, path: str) -> None:
        self.client.log_text(self.run_id, json.dumps(obj, indent=2, sort_keys=True), path)

    def figure(self, fig: Any, path: str) -> None:
        self.client.log_figure(self.run_id, fig, path)

    def file(self, local: Path, artifact_dir: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local), artifact_dir)

    def folder(self, local: Path, artifact_dir: str) -> None:
        self.client.log_artifacts(self.run_id, str(local), artifact_dir)

    def state_dict(self, state: Mapping[str, torch.Tensor], path: str) -> None:
        import torch

        with tempfile.TemporaryDirectory() as d:
            local = Path(d) / Path(path).name
            torch.save({k: v.detach().cpu() for k, v in state.items()}, local)
            self.client.log_artifact(self.run_id, str(local), str(Path(path).parent) if "/" in path else None)


def enabled() -> bool:
    return os.environ.get("KDSWEEP_TRACKING", "on").strip().lower() not in ("off", "0", "false", "no")


class NullRunLog(RunLog):
    """Tracking off: every logging call is accepted and dropped."""

    def __init__(self) -> None:
        self.client, self.run_id = None, "untracked"

    def _drop(self, *args: Any, **kwargs: Any) -> None:
        pass

    params = metrics = tags = text = json = figure = file = folder = state_dict = _drop


@contextmanager
def run(
    experiment: str, name: str, tags: Mapping[str, Any], parent_run_id: str | None = None
) -> Iterator[RunLog]:
    """Open a run; it ends FINISHED, FAILED (with `failure_reason`) or KILLED, never RUNNING."""
    if not enabled():
        yield NullRunLog()
        return
    c = client()
    all_tags = {"git_commit": git_commit(), **tags}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    r = c.create_run(
        experiment_id(c, experiment), run_name=name, tags={k: str(v) for k, v in all_tags.items()}
    )
    run_id = r.info.run_id
    previous = signal.getsignal(signal.SIGTERM)

    def _term(signum, frame):  # SIGTERM (Ray cancelling a trial, `kill`) -> KILLED
        raise KeyboardInterrupt("interrupted (SIGTERM)")

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _term)
    try:
        yield RunLog(c, run_id)
    except KeyboardInterrupt as e:  # its message, where given, says who stopped the run
        c.set_tag(run_id, "failure_reason", str(e) or "interrupted")
        c.set_terminated(run_id, "KILLED")
        raise
    except BaseException as e:
        c.set_tag(run_id, "failure_reason", f"{type(e).__name__}: {e}"[:5000])
        c.set_terminated(run_id, "FAILED")
        raise
    else:
        c.set_terminated(run_id, "FINISHED")
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def find_finished(experiment: str, tags: Mapping[str, str]) -> str | None:
    """The newest FINISHED run of `experiment` carrying all `tags`, or None."""
    if not enabled():
        return None
    c = client()
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return None
    flt, order = _filter(tags, "FINISHED"), ["attributes.start_time DESC"]
    runs = c.search_runs([exp.experiment_id], filter_string=flt, order_by=order, max_results=1)
    return runs[0].info.run_id if runs else None


def _filter(tags: Mapping[str, str], status: str | None = None) -> str:
    clauses = [f"tags.{k} = '{v}'" for k, v in tags.items()]
    return " and ".join(clauses + ([f"attributes.status = '{status}'"] if status else []))


def load_state_dict(run_id: str, path: str) -> dict[str, torch.Tensor]:
    """A checkpoint logged with `RunLog.state_dict`, loaded with weights_only=True."""
    import torch

    c = client()
    with tempfile.TemporaryDirectory() as d:
        local = c.download_artifacts(run_id, path, d)
        data = Path(local).read_bytes()
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def get_run(run_id: str):
    return client().get_run(run_id)


def search(experiment: str, tags: Mapping[str, str], status: str | None = None) -> list:
    """All runs of `experiment` carrying `tags` (and `status`), every page."""
    c = client()
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs, token = [], None
    while True:
        page = c.search_runs([exp.experiment_id], _filter(tags, status), max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def kill_stale(experiment: str, tags: Mapping[str, str], reason: str, status: str = "KILLED") -> list[str]:
    """End RUNNING runs carrying `tags` whose process is gone: KILLED (stopped on purpose) or
    FAILED (their worker died), with `reason`; their ids."""
    import mlflow

    c = client()
    ended = []
    for run_id in [r.info.run_id for r in search(experiment, tags, "RUNNING")]:
        try:
            c.set_tag(run_id, "failure_reason", reason)
            c.set_terminated(run_id, status)
        except mlflow.exceptions.MlflowException:
            # the run's own process was ending it at the same moment (a trial the scheduler
            # stopped tags and closes its run itself): its own ending stands; if it is still
            # open a moment later, end it here (its reason tag is already there)
            time.sleep(1.0)
            if c.get_run(run_id).info.status != "RUNNING":
                continue
            c.set_terminated(run_id, status)
        ended.append(run_id)
    return ended


def runs_frame(filter_string: str):
    """Runs of every experiment matching `filter_string`, as one pandas frame (columns run_id,
    status, start_time, metrics.*, params.*, tags.*), read in bulk pages, not run by run."""
    import mlflow

    c = client()
    ids = [e.experiment_id for e in c.search_experiments()]
    if not ids:
        import pandas as pd

        return pd.DataFrame()
    return mlflow.search_runs(experiment_ids=ids, filter_string=filter_string, output_format="pandas")


def read_text(run_id: str, path: str) -> str | None:
    """A text artifact of a run, or None when it is missing."""
    import mlflow

    try:
        with tempfile.TemporaryDirectory() as d:
            return Path(client().download_artifacts(run_id, path, d)).read_text(encoding="utf-8")
    except (OSError, mlflow.exceptions.MlflowException):
        return None


def log_files(run_id: str, files: list[Path], artifact_dir: str) -> None:
    c = client()
    for f in files:
        c.log_artifact(run_id, str(f), artifact_dir)


# Reading runs in bulk (the report stage). Two readers give the same records: "sql" reads
# MLflow's own tables of a SQL store (sqlite or another SQLAlchemy URI) in a few read-only
# queries and imports no MLflow (~1.5 s); "mlflow" goes through the public client (search_runs,
# get_metric_history), all that a tracking server (http://) offers. The tables and columns read
# are those of MLflow's schema since 1.x: runs, experiments, params, tags, latest_metrics, metrics.
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_QUOTED = ("key", "value", "step", "timestamp")  # reserved words in some dialects
_ENGINES: dict[str, Any] = {}  # SQLAlchemy engines of non-sqlite stores, one per URI
_UNREADABLE: set[str] = set()  # stores whose tables could not be read: the client reads them
_INFO = ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")  # ms times


class SqlUnreadable(Exception):
    """MLflow's tables could not be read directly (e.g. an empty or an unmigrated database)."""


def reader(via: str = "auto") -> str:
    """The reader `via` names ("sql" or "mlflow"); "auto": "sql" wherever the store is SQL."""
    uri = tracking_uri()
    if via != "auto":
        return via
    return (
        "sql" if uri.split(":", 1)[0].split("+")[0] in _SQL_SCHEMES and uri not in _UNREADABLE else "mlflow"
    )


def _sql(query: str, args: Mapping[str, Any]) -> list[tuple]:
    """Rows of a read-only query on the store's tables, `{key}`-style names quoted; none from a
    sqlite file that does not exist (no store yet: the client would create one)."""
    uri = tracking_uri()
    db = sqlite_path(uri)
    if db is not None:
        if not db.exists():
            return []
        try:  # mode=ro: this connection cannot write, whatever the query
            con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
            try:
                return con.execute(query.format(**{n: f'"{n}"' for n in _QUOTED}), args).fetchall()
            finally:
                con.close()
        except sqlite3.Error as e:
            raise SqlUnreadable(str(e)) from e
    import sqlalchemy as sa

    if uri not in _ENGINES:
        _ENGINES[uri] = sa.create_engine(uri)
    quote = _ENGINES[uri].dialect.identifier_preparer.quote_identifier
    try:
        with _ENGINES[uri].connect() as con:  # closed without a commit: nothing is written
            return [
                tuple(r) for r in con.execute(sa.text(query.format(**{n: quote(n) for n in _QUOTED})), args)
            ]
    except sa.exc.SQLAlchemyError as e:
        raise SqlUnreadable(str(e)) from e


def _in(name: str, values: list) -> tuple[str, dict[str, Any]]:
    """`(:name0, :name1, ...)` and its arguments: an IN list of bound values."""
    args = {f"{name}{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(f":{a}" for a in args) + ")", args


def _sql_runs(
    ids: list[str] | None, tags: Mapping[str, str], status: str | None, not_status: str | None
) -> list[dict]:
    where, args = ["r.lifecycle_stage = 'active'", "e.lifecycle_stage = 'active'"], {}
    if ids is not None:
        sql, args = _in("id", ids)
        where.append(f"r.run_uuid IN {sql}")
    for i, (k, v) in enumerate(tags.items()):
        where.append(
            f"EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.{{key}} = :k{i} AND t.{{value}} = :v{i})"
        )
        args.update({f"k{i}": k, f"v{i}": v})
    if status is not None:
        where.append("r.status = :status")
        args["status"] = status
    if not_status is not None:
        where.append("r.status != :not_status")
        args["not_status"] = not_status
    rows = _sql(
        "SELECT r.run_uuid, r.experiment_id, r.status, r.artifact_uri, r.start_time, r.end_time FROM runs r "
        "JOIN experiments e ON e.experiment_id = r.experiment_id WHERE " + " AND ".join(where),
        args,
    )
    runs = {r[0]: {**dict(zip(_INFO, r, strict=True)), "metrics": {}, "params": {}, "tags": {}} for r in rows}
    for run in runs.values():
        run["experiment_id"] = str(run["experiment_id"])
    found = sorted(runs)
    for i in range(0, len(found), 500):  # IN lists of at most 500 bound values
        sql, args = _in("id", found[i : i + 500])
        for table in ("params", "tags"):
            for rid, k, v in _sql(
                f"SELECT run_uuid, {{key}}, {{value}} FROM {table} WHERE run_uuid IN {sql}", args
            ):
                runs[rid][table][k] = v
        q = f"SELECT run_uuid, {{key}}, {{value}}, is_nan FROM latest_metrics WHERE run_uuid IN {sql}"
        for rid, k, v, nan in _sql(q, args):
            runs[rid]["metrics"][k] = float("nan") if nan else v
    return list(runs.values())


def _client_runs(
    exps: list[str],
    ids: list[str] | None,
    tags: Mapping[str, str],
    status: str | None,
    not_status: str | None,
) -> list[dict]:
    clauses = [f"tags.{k} = '{v}'" for k, v in tags.items()]
    clauses += [f"attributes.status = '{status}'"] if status else []
    clauses += [f"attributes.status != '{not_status}'"] if not_status else []
    clauses += ["attributes.run_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"] if ids is not None else []
    c = client()
    runs, token = [], None
    while exps:
        page = c.search_runs(exps, " and ".join(clauses), max_results=1000, page_token=token)
        for r in page:
            i, d = r.info, r.data
            info = (i.run_id, i.experiment_id, i.status, i.artifact_uri, i.start_time, i.end_time)
            runs.append(
                {
                    **dict(zip(_INFO, info, strict=True)),
                    "metrics": dict(d.metrics),
                    "params": dict(d.params),
                    "tags": dict(d.tags),
                }
            )
        token = page.token
        if not token:
            break
    return runs


def _read(via: str, sql: Any, through_client: Any) -> Any:
    """`sql()` where the store is read directly, else `through_client()`; "auto" turns to the
    client (saying so on stderr) for a store whose tables cannot be read."""
    if reader(via) == "sql":
        try:
            return sql()
        except SqlUnreadable as e:
            if via == "sql":
                raise
            _UNREADABLE.add(tracking_uri())
            print(f"tracking: reading {display_uri()} through the MLflow client ({e})", file=sys.stderr)
    return through_client()


def _sql_histories(ids: list[str], keys: list[str]) -> dict[tuple[str, str], list[tuple]]:
    out: dict[tuple[str, str], list[tuple]] = {}
    ksql, kargs = _in("k", keys)
    for i in range(0, len(ids), 400):
        isql, iargs = _in("id", ids[i : i + 400])
        q = (
            "SELECT run_uuid, {key}, {step}, {timestamp}, {value}, is_nan FROM metrics "
            f"WHERE run_uuid IN {isql} AND {{key}} IN {ksql} "
            "ORDER BY run_uuid, {key}, {timestamp}, {step}, {value}"  # get_metric_history's order
        )
        for rid, k, step, ts, v, nan in _sql(q, {**iargs, **kargs}):
            out.setdefault((rid, k), []).append((step, ts, float("nan") if nan else v))
    return out


def _client_histories(ids: list[str], keys: list[str]) -> dict[tuple[str, str], list[tuple]]:
    c = client()

    def one(pair: tuple[str, str]) -> list[tuple]:
        return [(m.step, m.timestamp, m.value) for m in c.get_metric_history(*pair)]

    pairs = [(r, k) for r in ids for k in keys]
    if tracking_uri().startswith(("http:", "https:")):  # a request per pair: several in flight
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            points = list(pool.map(one, pairs))
    else:
        points = [one(p) for p in pairs]
    return {p: pts for p, pts in zip(pairs, points, strict=True) if pts}


class Reader:
    """The reads of one report build: `via` names the reader ("auto": "sql" wherever the store is
    SQL, else "mlflow"); through the client, the experiments are listed once per Reader."""

    def __init__(self, via: str = "auto") -> None:
        self.via = via
        self._experiments: list[str] | None = None

    def _experiment_ids(self) -> list[str]:
        if self._experiments is None:
            self._experiments = [e.experiment_id for e in client().search_experiments()]
        return self._experiments

    def runs(
        self,
        ids: list[str] | None = None,
        tags: Mapping[str, str] | None = None,
        status: str | None = None,
        not_status: str | None = None,
    ) -> list[dict]:
        """The active runs of active experiments that match every condition given, as records:
        run_id, experiment_id, status, artifact_uri, start_time and end_time (ms), and the dicts
        params, tags and metrics (latest values, NaN where NaN was logged). Order unspecified."""
        if ids is not None and not ids:
            return []
        t = dict(tags or {})
        return _read(
            self.via,
            lambda: _sql_runs(ids, t, status, not_status),
            lambda: _client_runs(self._experiment_ids(), ids, t, status, not_status),
        )

    def histories(self, run_ids: list[str], keys: list[str]) -> dict[tuple[str, str], list[tuple]]:
        """Every logged (step, timestamp, value) of `keys` per (run_id, key) that has any, in
        MLflow's order (timestamp, step, value): get_metric_history's, for many runs at once."""
        ids, ks = sorted(set(run_ids)), sorted(set(keys))
        if not ids or not ks:
            return {}
        return _read(self.via, lambda: _sql_histories(ids, ks), lambda: _client_histories(ids, ks))
