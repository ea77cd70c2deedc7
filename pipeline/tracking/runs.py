"""Runs: opening one and ending it, the logging calls on it (`RunLog`), finding runs again
(resume, teacher reuse) and ending the ones a dead process left RUNNING.

Runs are created through `MlflowClient` (no global active run), so several can be open in one
process. Status contract: a run that ends normally is FINISHED; an exception marks it FAILED
with the reason in the tag ``failure_reason``; Ctrl-C (KeyboardInterrupt), SIGTERM or a
scheduler's stop (a KeyboardInterrupt whose message is the reason) marks it KILLED.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.tracking.models import log_model, save_state_dict
from pipeline.tracking.store import PROJECT_ROOT, client, enabled, experiment_id, git_commit, tracking_uri

if TYPE_CHECKING:
    import torch
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

NOTE = "mlflow.note.content"  # a run's description in the UI (markdown)
_BATCH = 100  # MLflow's limit of params per log_batch call
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
        """`module` as an MLflow PyTorch model `name` of this run; its model URI
        (pipeline.tracking.models.log_model says how)."""
        return log_model(self.client, self.run_id, module, name, example, metadata, three_d)

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
        """A checkpoint artifact, read back with `load_state_dict`."""
        save_state_dict(self.client, self.run_id, state, path)


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
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines per run
    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval, tracking_uri=tracking_uri())
    monitor.start()
    return monitor


def _finish_monitor(monitor: Any) -> None:
    """Stop the sampler and write one last sample, taken now. MLflow's sampler publishes a
    sample only after a whole interval and drops the one in progress when the run ends, so a
    run shorter than the interval (a fast trial on a fast machine) would carry no system
    metrics at all; the last sample also shows the run's state at its end."""
    monitor.finish()  # joins the sampling thread: the calls below run alone
    try:
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
    except Exception as e:  # metrics about the machine never fail the run
        logging.getLogger(__name__).warning("last system-metrics sample not written: %s", e)


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
            _finish_monitor(monitor)
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


def log_files(run_id: str, files: list[Path], artifact_dir: str) -> None:
    """Add `files` to an existing run's artifacts (the report's figures to its sweep's run)."""
    c = client()
    for f in files:
        c.log_artifact(run_id, str(f), artifact_dir)


def download_folder(run_id: str, artifact_dir: str, dest: Path) -> Path | None:
    """A run's artifact folder copied into `dest` (returned: dest/<artifact_dir>), or None when
    the run has no such folder (or the store cannot serve it)."""
    c = client()
    try:
        if not c.list_artifacts(run_id, artifact_dir):
            return None
        return Path(c.download_artifacts(run_id, artifact_dir, str(dest)))
    except Exception:  # an unreachable artifact store: the caller computes instead
        return None


def _filter(tags: Mapping[str, str], status: str | None = None) -> str:
    clauses = [f"tags.{k} = '{v}'" for k, v in tags.items()]
    return " and ".join(clauses + ([f"attributes.status = '{status}'"] if status else []))


def find_finished(experiment: str, tags: Mapping[str, str]) -> str | None:
    """The newest FINISHED run of `experiment` carrying all `tags`, or None (always None with
    tracking off: nothing is reused)."""
    if not enabled():
        return None
    c = client()
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return None
    flt, order = _filter(tags, "FINISHED"), ["attributes.start_time DESC"]
    runs = c.search_runs([exp.experiment_id], filter_string=flt, order_by=order, max_results=1)
    return runs[0].info.run_id if runs else None


def get_run(run_id: str) -> Run:
    """One run, as MLflow's client gives it (info and data)."""
    return client().get_run(run_id)


def search(experiment: str, tags: Mapping[str, str], status: str | None = None) -> list[Run]:
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
