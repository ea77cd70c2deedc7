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

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# MLflow 3's UI opens an experiment in its GenAI view unless this tag says model training
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE = "mlflow.note.content"  # a run's description in the UI (markdown)
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
        return uri.rstrip("/")
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
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


_DUPLICATE = ("UNIQUE constraint", "IntegrityError", "Duplicate entry", "duplicate key")


def _log_inputs(c: MlflowClient, run_id: str, inputs: list) -> None:
    """log_inputs, retried when another run created the same dataset meanwhile: MLflow's SQL
    store looks a dataset up, then inserts it, so two trials logging the same split at once
    (every fold shares the test split) can both insert and one fails on the unique key. The
    retry finds the row the other wrote and links it."""
    for attempt in range(5):
        try:
            c.log_inputs(run_id, datasets=inputs)
            return
        except Exception as e:
            if attempt == 4 or not any(d in str(e) for d in _DUPLICATE):
                raise
            time.sleep(0.2 * (attempt + 1))


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

    def describe(self, markdown: str) -> None:
        """The run's description, shown at the top of its page in the UI."""
        self.client.set_tag(self.run_id, NOTE, markdown)

    def datasets(
        self, name: str, root: str, digests: Mapping[str, str], sizes: Mapping[str, int], fold: str = ""
    ) -> None:
        """The splits the run used, as MLflow dataset inputs (context train/dev/test, and the
        fold): `name`, the root as a source (relative where it lies inside the project, so no
        machine's path shows), each split's digest and size. Also as tags `data.digest.<split>`,
        which the report stage compares."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        p = Path(root)
        if p.is_absolute() and p.resolve().is_relative_to(PROJECT_ROOT):
            root = p.resolve().relative_to(PROJECT_ROOT).as_posix()
        inputs = []
        for split, digest in digests.items():
            tags = [InputTag("mlflow.data.context", split)] + ([InputTag("fold", fold)] if fold else [])
            profile = json.dumps({"num_rows": sizes.get(split, 0)})
            entity = Dataset(name, digest, "local", json.dumps({"uri": root}), None, profile)
            inputs.append(DatasetInput(entity, tags))
        _log_inputs(self.client, self.run_id, inputs)
        self.tags({f"data.digest.{split}": d for split, d in digests.items()})

    def members(self, runs: Mapping[str, str], digests: Mapping[str, str]) -> None:
        """An ensemble's member runs (name -> run id) as its dataset inputs (context `member`):
        their saved predictions, with the source `runs:/<id>/predictions` and a digest."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [
            DatasetInput(
                Dataset(
                    f"{name} predictions",
                    digests[rid],
                    "local",
                    json.dumps({"uri": f"runs:/{rid}/predictions"}),
                ),
                [InputTag("mlflow.data.context", "member")],
            )
            for name, rid in runs.items()
        ]
        _log_inputs(self.client, self.run_id, inputs)

    def model(
        self, module: Any, name: str, example: Any, metadata: Mapping[str, Any], three_d: bool = False
    ) -> str:
        """`module` as an MLflow PyTorch model `name` of this run (pickled, with the project's
        models/, core/ and tasks/ as its code), its signature inferred from `example` and the
        module's output on it; returns its model URI. Requirements are pinned from this
        environment instead of MLflow's inference (which loads the model in a subprocess)."""
        import logging

        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        with torch.no_grad():
            output = module(torch.as_tensor(example)).numpy()
        packages = ["torch", "torchvision", "timm", "transformers", "numpy"] + (
            ["monai", "einops"] if three_d else []
        )
        # the logged model joins the run's experiment (MLflow puts it in the active one), where
        # `runs:/<run id>/<name>` looks it up
        mlflow.set_experiment(experiment_id=self.client.get_run(self.run_id).info.experiment_id)
        quiet = logging.getLogger("mlflow")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # MLflow warns on every pickled model
        try:
            info = mlflow.pytorch.log_model(
                module,
                name=name,
                run_id=self.run_id,
                code_paths=[str(PROJECT_ROOT / p) for p in ("models", "core", "tasks")],
                signature=infer_signature(example, output),
                input_example=example,
                pip_requirements=[_pinned(p) for p in packages],
                serialization_format="pickle",
                metadata=dict(metadata),
            )
        finally:
            quiet.setLevel(level)
        return info.model_uri

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

    params = metrics = tags = describe = datasets = members = model = text = json = figure = file = folder = (
        state_dict
    ) = _drop


def _system_monitor(run_id: str, interval: float) -> Any:
    """MLflow's system-metrics sampler on this run (CPU, memory, disk, network, and GPU
    utilisation and memory where NVML sees a GPU), or None where psutil is missing."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError:
        return None
    import logging

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines per run
    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval, tracking_uri=tracking_uri())
    monitor.start()
    return monitor


@contextmanager
def run(
    experiment: str,
    name: str,
    tags: Mapping[str, Any],
    parent_run_id: str | None = None,
    system_metrics: float = 0.0,
) -> Iterator[RunLog]:
    """Open a run; it ends FINISHED, FAILED (with `failure_reason`) or KILLED, never RUNNING.
    `system_metrics` > 0: MLflow's system metrics are sampled every that many seconds."""
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
    monitor = _system_monitor(run_id, system_metrics) if system_metrics > 0 else None

    def end(status: str) -> None:
        if monitor is not None:  # its last samples are written before the run ends
            monitor.finish()
        c.set_terminated(run_id, status)

    try:
        yield RunLog(c, run_id)
    except KeyboardInterrupt as e:  # its message, where given, says who stopped the run
        c.set_tag(run_id, "failure_reason", str(e) or "interrupted")
        end("KILLED")
        raise
    except BaseException as e:
        c.set_tag(run_id, "failure_reason", f"{type(e).__name__}: {e}"[:5000])
        end("FAILED")
        raise
    else:
        end("FINISHED")
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _pinned(package: str) -> str:
    from importlib.metadata import version

    return f"{package}=={version(package).split('+')[0]}"


def register(model_uri: str, name: str, tags: Mapping[str, str]) -> str:
    """Register a logged model under `name` (created on first use), the version tagged with
    `tags`; returns the version number."""
    import mlflow

    client()  # the tracking URI, set
    version = mlflow.register_model(model_uri, name, tags=dict(tags), await_registration_for=60)
    return str(version.version)


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


# the report stage's bulk reads (a SQL fast path beside the client): pipeline/tracking/read.py
from pipeline.tracking.read import Reader, SqlUnreadable, reader  # noqa: E402, F401
