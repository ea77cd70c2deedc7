"""The only package that talks to MLflow; this file only re-exports its parts, so callers write
`from pipeline import tracking` and `tracking.run(...)` wherever a name lives.

- `store`: the store and its URI (MLFLOW_TRACKING_URI, default ``sqlite:///<project>/mlruns/
  mlflow.db``), the cached client, an experiment per dataset, the UI's links, tracking on/off.
- `runs`: a run's lifecycle (FINISHED, FAILED with ``failure_reason``, or KILLED: never left
  RUNNING), `RunLog`, finding runs again and ending the ones a dead process left RUNNING.
- `models`: MLflow PyTorch models, the model registry, state-dict checkpoints.
- `read`: the report stage's reads (a SQL fast path beside the client, the REST API for a
  tracking server).
- `rest`, `served`, `snapshot`: a tracking server read through its REST API without importing
  MLflow, and the local snapshot of ended runs that lets the next report read only what is new.
- `reach`: `check_store`, asked first by the commands that write: can the store be reached and
  written? (seconds, without MLflow, instead of MLflow's minutes of retries)

The parts import `store` and each other in one direction (store <- models <- runs; store <-
rest <- served <- read, store <- snapshot <- served; store <- reach), never this file:
tests/test_layering.py fails on an import circle.

KDSWEEP_TRACKING=off (``python -m pipeline run --no-track``): runs are not recorded at all and
nothing is reused from the store: a scratch run, and the baseline of the tracking-overhead
benchmark.
"""

from pipeline.tracking.models import load_state_dict, log_model, register, save_state_dict
from pipeline.tracking.reach import check_store
from pipeline.tracking.read import Reader, SqlUnreadable, artifact_text, read_text, reader, runs_frame
from pipeline.tracking.runs import (
    NOTE,
    NullRunLog,
    RunLog,
    download_folder,
    find_finished,
    get_run,
    kill_stale,
    log_files,
    run,
    search,
)
from pipeline.tracking.store import (
    EXPERIMENT_KIND,
    MODEL_TRAINING,
    PROJECT_ROOT,
    client,
    client_at,
    client_class,
    display_uri,
    enabled,
    experiment_id,
    experiment_links,
    git_commit,
    open_hint,
    public_uri,
    runs_link,
    sql_tables,
    sqlite_path,
    tracking_uri,
    ui_base,
)

__all__ = [
    "EXPERIMENT_KIND",
    "MODEL_TRAINING",
    "NOTE",
    "PROJECT_ROOT",
    "NullRunLog",
    "Reader",
    "RunLog",
    "SqlUnreadable",
    "artifact_text",
    "check_store",
    "client",
    "client_at",
    "client_class",
    "display_uri",
    "enabled",
    "experiment_id",
    "experiment_links",
    "find_finished",
    "get_run",
    "git_commit",
    "kill_stale",
    "load_state_dict",
    "download_folder",
    "log_files",
    "log_model",
    "open_hint",
    "public_uri",
    "read_text",
    "reader",
    "register",
    "run",
    "runs_frame",
    "runs_link",
    "save_state_dict",
    "search",
    "sql_tables",
    "sqlite_path",
    "tracking_uri",
    "ui_base",
]
