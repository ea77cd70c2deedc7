"""Reading runs for the report stage: in bulk (`Reader`), as a pandas frame (`runs_frame`), and a
run's text artifacts (`read_text`, `artifact_text`). Part of pipeline.tracking, the one place
that talks to MLflow. Three bulk readers give the same records: "sql" reads MLflow's own tables
of a SQL store (sqlite or another SQLAlchemy URI) in a few read-only queries and imports no
MLflow (~1.5 s); "rest" reads a tracking server (http://, https://) through its REST API with a
local snapshot of ended runs (pipeline.tracking.served), also without MLflow; "mlflow" goes
through the public client (search_runs, get_metric_history), for any other store and where the
server's login needs MLflow itself (an auth plugin). The tables and columns read are those of
MLflow's schema since 1.x: runs, experiments, params, tags, latest_metrics, metrics."""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import TrackingError
from pipeline.tracking.rest import RUN_INFO, server, unsupported, where
from pipeline.tracking.served import Served
from pipeline.tracking.store import client, display_uri, sqlite_path, tracking_uri

if TYPE_CHECKING:
    import pandas as pd

_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_QUOTED = ("key", "value", "step", "timestamp")  # reserved words in some dialects
_ENGINES: dict[str, Any] = {}  # SQLAlchemy engines of non-sqlite stores, one per URI
_UNREADABLE: set[str] = set()  # stores whose tables could not be read: the client reads them


class SqlUnreadable(Exception):
    """MLflow's tables could not be read directly (e.g. an empty or an unmigrated database)."""


def reader(via: str = "auto") -> str:
    """The reader `via` names ("sql", "rest" or "mlflow"); "auto": "sql" wherever the store is
    SQL, "rest" for a tracking server whose login this reader can send, else "mlflow"."""
    uri = tracking_uri()
    if via != "auto":
        return via
    scheme = uri.split(":", 1)[0].split("+")[0].lower()
    if scheme in _SQL_SCHEMES and uri not in _UNREADABLE:
        return "sql"
    return "rest" if scheme in ("http", "https") and unsupported() is None else "mlflow"


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
    runs = {
        r[0]: {**dict(zip(RUN_INFO, r, strict=True)), "metrics": {}, "params": {}, "tags": {}} for r in rows
    }
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
    c = client()
    runs, token = [], None
    while exps:
        page = c.search_runs(
            exps, where(ids, dict(tags), status, not_status), max_results=1000, page_token=token
        )
        for r in page:
            i, d = r.info, r.data
            info = (i.run_id, i.experiment_id, i.status, i.artifact_uri, i.start_time, i.end_time)
            runs.append(
                {
                    **dict(zip(RUN_INFO, info, strict=True)),
                    "metrics": dict(d.metrics),
                    "params": dict(d.params),
                    "tags": dict(d.tags),
                }
            )
        token = page.token
        if not token:
            break
    return runs


def _read(via: str, sql: Any, through_client: Any, served: Any) -> Any:
    """`sql()` where the store is read directly, `served()` over the REST API, else
    `through_client()`; "auto" turns to the client (saying so on stderr) for a store whose
    tables cannot be read."""
    if reader(via) == "rest":
        return served()
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
    SQL, "rest" for a tracking server, else "mlflow"); through the client, the experiments are
    listed once per Reader; over REST, what it read is kept for the next build by `close`."""

    def __init__(self, via: str = "auto") -> None:
        self.via = via
        self._experiments: list[str] | None = None
        self._served: Served | None = None

    def _experiment_ids(self) -> list[str]:
        if self._experiments is None:
            self._experiments = [e.experiment_id for e in client().search_experiments()]
        return self._experiments

    def _rest(self) -> Served:
        if self._served is None:
            if not tracking_uri().startswith(("http://", "https://")):
                raise TrackingError(
                    f"the REST reader needs a tracking server (http://...), not {display_uri()}"
                )
            self._served = Served(tracking_uri())
        return self._served

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
            lambda: self._rest().runs(ids, t, status, not_status),
        )

    def prefetch(self, ids: list[str]) -> None:
        """Read the runs `ids` now, in as few requests as the reader allows, for the `runs(ids)`
        calls to come (over REST: a report's sweeps' runs in one batch, not a search per sweep).
        The other readers read fast enough as asked: nothing to do."""
        if ids and reader(self.via) == "rest":
            self._rest().runs(ids, {}, None, None)

    def histories(self, run_ids: list[str], keys: list[str]) -> dict[tuple[str, str], list[tuple]]:
        """Every logged (step, timestamp, value) of `keys` per (run_id, key) that has any, in
        MLflow's order (timestamp, step, value): get_metric_history's, for many runs at once."""
        ids, ks = sorted(set(run_ids)), sorted(set(keys))
        if not ids or not ks:
            return {}
        return _read(
            self.via,
            lambda: _sql_histories(ids, ks),
            lambda: _client_histories(ids, ks),
            lambda: self._rest().histories(ids, ks),
        )

    def close(self) -> None:
        """The end of the build: over REST, the snapshot of ended runs is saved."""
        if self._served is not None:
            self._served.close()
            self._served = None


def runs_frame(filter_string: str) -> pd.DataFrame:
    """Runs of every experiment matching `filter_string`, as one pandas frame (columns run_id,
    status, start_time, metrics.*, params.*, tags.*), read in bulk pages, not run by run:
    mlflow.search_runs itself, the yardstick the readers above are checked against."""
    import mlflow

    c = client()
    ids = [e.experiment_id for e in c.search_experiments()]
    if not ids:
        import pandas as pd

        return pd.DataFrame()
    return mlflow.search_runs(experiment_ids=ids, filter_string=filter_string, output_format="pandas")


def artifact_text(run_id: str, artifact_uri: str, path: str) -> str | None:
    """A text artifact of a run whose artifacts are not a local folder, or None when it is
    missing: from the tracking server's artifact endpoint for an ``mlflow-artifacts:`` URI
    (no MLflow import), else through MLflow's client (s3://, gs://, ...)."""
    uri = tracking_uri()
    if (
        artifact_uri.startswith("mlflow-artifacts:")
        and uri.startswith(("http://", "https://"))
        and unsupported() is None
    ):
        data = server(uri).artifact(artifact_uri, path)
        return None if data is None else data.decode("utf-8")
    return read_text(run_id, path)


def read_text(run_id: str, path: str) -> str | None:
    """A text artifact of a run, or None when it is missing."""
    import mlflow

    try:
        with tempfile.TemporaryDirectory() as d:
            return Path(client().download_artifacts(run_id, path, d)).read_text(encoding="utf-8")
    except (OSError, mlflow.exceptions.MlflowException):
        return None
