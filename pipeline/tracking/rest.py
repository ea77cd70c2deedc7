"""An MLflow tracking server read through its REST API, without importing MLflow (2-3 s of the
report's time over HTTP went to importing the client alone). Part of pipeline.tracking.

What is read: experiments/search, runs/search (paged, whole runs: the API has no column
selection), metric histories in bulk (the server's ``get-history-bulk``: all points of one key
for up to 100 runs, in get_metric_history's order; ``get-history`` per run and key where a
server lacks it) and artifacts behind ``mlflow-artifacts:`` URIs. The server is reached the way
MLflow's own client reaches it: MLFLOW_TRACKING_USERNAME/PASSWORD (or ~/.mlflow/credentials)
as basic auth, else MLFLOW_TRACKING_TOKEN as a bearer token; MLFLOW_TRACKING_INSECURE_TLS,
MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_TRACKING_CLIENT_CERT_PATH, MLFLOW_HTTP_REQUEST_TIMEOUT
and MLFLOW_WORKSPACE. An auth plugin or AWS signing (MLFLOW_TRACKING_AUTH,
MLFLOW_TRACKING_AWS_SIGV4) is MLflow's to do: `unsupported` says so and the client reads.
A failure is one TrackingError line: the server (no credentials), what was read, and why.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from core.errors import TrackingError
from pipeline.tracking.store import public_uri

IN_FLIGHT = 4  # requests at once: the server answers each search on one core
BULK_RUNS, BULK_POINTS = 100, 25_000  # the server's limits of one get-history-bulk request
RUN_INFO = (
    "run_id",
    "experiment_id",
    "status",
    "artifact_uri",
    "start_time",
    "end_time",
)  # ms times, the readers' record fields


def _on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("true", "1")


def unsupported() -> str | None:
    """Why this reader cannot log in as MLflow's client would (then the client reads), or None."""
    if os.environ.get("MLFLOW_TRACKING_AUTH"):
        return "MLFLOW_TRACKING_AUTH names an MLflow auth plugin"
    if _on("MLFLOW_TRACKING_AWS_SIGV4"):
        return "MLFLOW_TRACKING_AWS_SIGV4 asks for AWS request signing"
    return None


def _login() -> dict[str, str]:
    """The Authorization header MLflow's client would send (rest_utils.http_request), if any."""
    import base64

    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not (user and password):  # MLflow's credentials file fills what the environment lacks
        import configparser

        ini = configparser.ConfigParser()
        ini.read(os.path.expanduser("~/.mlflow/credentials"))
        got = ini["mlflow"] if "mlflow" in ini else {}
        user = user or got.get("mlflow_tracking_username")
        password = password or got.get("mlflow_tracking_password")
    if user and password:
        return {"Authorization": "Basic " + base64.standard_b64encode(f"{user}:{password}".encode()).decode()}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _float(v: Any) -> float:
    return float(v)  # the API writes NaN and infinities as the strings "NaN", "Infinity"


def record(run: dict) -> dict:
    """A run of runs/search as the readers' record (what MLflow's Run.from_proto gives)."""
    info, data = run.get("info", {}), run.get("data", {})
    values = (
        info["run_id"],
        str(info.get("experiment_id", "")),
        info.get("status", "RUNNING"),
        info.get("artifact_uri", ""),
        int(info.get("start_time", 0)),
        int(info.get("end_time", 0)) or None,  # 0: no end time (RunInfo.from_proto)
    )
    return {
        **dict(zip(RUN_INFO, values, strict=True)),
        "metrics": {m["key"]: _float(m.get("value", 0.0)) for m in data.get("metrics", [])},
        "params": {p["key"]: p.get("value", "") for p in data.get("params", [])},
        "tags": {t["key"]: t.get("value", "") for t in data.get("tags", [])},
    }


def _point(m: dict) -> tuple[int, int, float]:
    return int(m.get("step", 0)), int(m.get("timestamp", 0)), _float(m.get("value", 0.0))


class Server:
    """The tracking server at `uri`: one HTTP session (kept-alive connections, IN_FLIGHT of
    them), its requests counted (`requests`) and timed (`waited`, seconds) for the benchmark."""

    def __init__(self, uri: str) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        parts = urlsplit(uri)  # a query or fragment has no place in the API's URLs
        self.uri = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.shown = public_uri(self.uri)
        self.timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 120)
        self.session = s = requests.Session()
        s.headers.update(_login())
        if os.environ.get("MLFLOW_WORKSPACE"):
            s.headers["X-MLFLOW-WORKSPACE"] = os.environ["MLFLOW_WORKSPACE"]
        s.verify = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or not _on(
            "MLFLOW_TRACKING_INSECURE_TLS"
        )
        s.cert = os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None
        retry = Retry(
            total=2, read=0, backoff_factor=0.3, status_forcelist=(429, 502, 503, 504), allowed_methods=None
        )
        retry.raise_on_status = False
        for scheme in ("http://", "https://"):
            s.mount(scheme, HTTPAdapter(pool_maxsize=IN_FLIGHT * 2, max_retries=retry))
        self.requests, self.waited, self.has_bulk = 0, 0.0, True

    def fail(self, what: str, why: str) -> TrackingError:
        return TrackingError(f"reading {what} from the MLflow tracking server at {self.shown} failed: {why}")

    def call(
        self, what: str, method: str, url: str, missing: bool = False, raw: bool = False, **kw: Any
    ) -> Any:
        """The answer to one request (JSON, or bytes where `raw`); None where `missing` and the
        server says 404. Anything else that goes wrong is a TrackingError line."""
        t0 = time.perf_counter()
        try:
            answer = self.session.request(method, url, timeout=self.timeout, **kw)
        except OSError as e:  # requests' own errors are OSErrors too
            raise self.fail(what, _why(e, self.timeout)) from None  # never e itself: it quotes URLs
        finally:
            self.requests += 1
            self.waited += time.perf_counter() - t0
        if answer.status_code == 404 and missing:
            return None
        if answer.status_code != 200:
            raise self.fail(what, _status(answer, "Authorization" in self.session.headers))
        if raw:
            return answer.content
        try:
            return answer.json()
        except ValueError:
            raise self.fail(what, "its answer is not JSON: is this an MLflow tracking server?") from None

    def api(self, what: str, method: str, path: str, missing: bool = False, **kw: Any) -> Any:
        return self.call(what, method, f"{self.uri}{path}", missing, **kw)

    def experiments(self) -> list[str]:
        """Ids of the active experiments this login may read, every page."""
        ids, token = [], None
        while True:
            body = {
                "max_results": 1000,
                "view_type": "ACTIVE_ONLY",
                **({"page_token": token} if token else {}),
            }
            got = self.api("the experiments", "POST", "/api/2.0/mlflow/experiments/search", json=body)
            ids += [e["experiment_id"] for e in got.get("experiments", [])]
            token = got.get("next_page_token")
            if not token:
                return ids

    def search(self, experiments: list[str], flt: str, view: str = "ACTIVE_ONLY") -> list[dict]:
        """Records of the runs matching the filter `flt` in `experiments` (runs/search, every page)."""
        runs, token = [], None
        while experiments:
            body = {"experiment_ids": experiments, "filter": flt, "run_view_type": view, "max_results": 1000}
            got = self.api("runs", "POST", "/api/2.0/mlflow/runs/search", json={**body, "page_token": token})
            runs += [record(r) for r in got.get("runs", [])]
            token = got.get("next_page_token")
            if not token:
                break
        return runs

    def by_id(
        self, experiments: list[str], ids: list[str], view: str = "ACTIVE_ONLY", per: int = 50
    ) -> list[dict]:
        """Records of the runs `ids` (those of `view`), in searches of `per` ids, several at once."""
        chunks = [where(ids[i : i + per]) for i in range(0, len(ids), per)]
        return [r for part in parallel(lambda w: self.search(experiments, w, view), chunks) for r in part]

    def history(self, run_id: str, key: str) -> list[tuple]:
        """(step, timestamp, value) of one run's metric (get-history, every page)."""
        points, token = [], None
        while True:
            args = {"run_id": run_id, "metric_key": key, "max_results": BULK_POINTS}
            got = self.api(
                f"metric history {key!r}",
                "GET",
                "/api/2.0/mlflow/metrics/get-history",
                params={**args, "page_token": token},
            )
            points += [_point(m) for m in got.get("metrics", [])]
            token = got.get("next_page_token")
            if not token:
                return points

    def bulk(self, ids: list[str], key: str) -> dict[str, list[tuple]]:
        """(step, timestamp, value) per run of `ids` (at most BULK_RUNS) that logged `key`, in
        the server's order (get_metric_history's): one request where the server allows."""
        if self.has_bulk:
            args = {"run_id": ids, "metric_key": key, "max_results": BULK_POINTS}
            path = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
            got = self.api(f"metric histories {key!r}", "GET", path, missing=True, params=args)
            if got is None:  # a server without it (or a proxy that hides it): one run a request
                self.has_bulk = False
            elif len(got.get("metrics", [])) < BULK_POINTS:  # else it may have been cut short
                out: dict[str, list[tuple]] = {}
                for m in got["metrics"]:
                    out.setdefault(m["run_id"], []).append(_point(m))
                return out
        got = parallel(lambda r: self.history(r, key), ids)
        return {r: pts for r, pts in zip(ids, got, strict=True) if pts}

    def artifact(self, artifact_uri: str, path: str) -> bytes | None:
        """An artifact behind an ``mlflow-artifacts:`` URI, as MLflow resolves it against the
        tracking URI (MlflowArtifactsRepository.resolve_uri), or None where there is none."""
        track, art = urlsplit(self.uri), urlsplit(artifact_uri)
        parts = (track.path, "api/2.0/mlflow-artifacts/artifacts", art.path, path)
        full = "/".join(p.strip("/") for p in parts if p.strip("/"))
        url = urlunsplit((track.scheme, art.netloc or track.netloc, "/" + quote(full), "", ""))
        return self.call(f"artifact {path!r}", "GET", url, missing=True, raw=True)


def where(
    ids: list[str] | None = None,
    tags: dict[str, str] | None = None,
    status: str | None = None,
    not_status: str | None = None,
) -> str:
    """The search filter of the readers' conditions (MLflow's filter syntax)."""
    clauses = [f"tags.{k} = '{v}'" for k, v in (tags or {}).items()]
    clauses += [f"attributes.status = '{status}'"] if status else []
    clauses += [f"attributes.status != '{not_status}'"] if not_status else []
    clauses += ["attributes.run_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"] if ids is not None else []
    return " and ".join(clauses)


def parallel(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """`fn` over `items`, IN_FLIGHT at once (one at a time for a single item), in order."""
    items = list(items)
    if len(items) < 2:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        return list(pool.map(fn, items))


def _status(answer: Any, sent_login: bool) -> str:
    """Why the server refused, in one line: its status, what to do for a login, its message."""
    code = answer.status_code
    if code == 401:
        return (
            "HTTP 401: the login was refused: check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
            if sent_login
            else "HTTP 401: it asks for a login: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
        )
    if code == 403:
        return "HTTP 403: this user may not read it (ask the server's admin for READ)"
    try:
        said = answer.json()
        said = f"{said.get('error_code', '')}: {said.get('message', '')}".strip(": ")
    except ValueError:
        said = ""
    said = " ".join(said.split())
    return f"HTTP {code}" + (f" ({said[:200]})" if said else "")


def _why(e: Exception, timeout: float) -> str:
    """A failed connection in a few words, never the exception's text (it quotes the URL)."""
    import requests

    if isinstance(e, requests.exceptions.SSLError):
        return "TLS failed: set MLFLOW_TRACKING_SERVER_CERT_PATH to the server's CA bundle (or MLFLOW_TRACKING_INSECURE_TLS=true)"
    if isinstance(e, requests.exceptions.Timeout):
        return f"no answer in {timeout:g} s (MLFLOW_HTTP_REQUEST_TIMEOUT)"
    if not isinstance(e, requests.exceptions.RequestException):  # a local file: a certificate
        return " ".join(str(e).split())[:200]
    if isinstance(e, requests.exceptions.ConnectionError):
        text = str(e)
        for known in (
            "Connection refused",
            "Name or service not known",
            "No route to host",
            "Connection reset",
        ):
            if known in text:
                return known.lower()
        return "cannot connect"
    return type(e).__name__


_SERVERS: dict[tuple, Server] = {}


def server(uri: str) -> Server:
    """The Server of `uri` with this environment's login and TLS settings, made once."""
    names = ("USERNAME", "PASSWORD", "TOKEN", "INSECURE_TLS", "SERVER_CERT_PATH", "CLIENT_CERT_PATH")
    key = (uri, os.environ.get("MLFLOW_WORKSPACE"), *(os.environ.get(f"MLFLOW_TRACKING_{n}") for n in names))
    if key not in _SERVERS:
        _SERVERS[key] = Server(uri)
    return _SERVERS[key]
