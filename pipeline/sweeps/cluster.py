"""Where trials run: Ray on this machine, or the cluster at RAY_ADDRESS (Ray core only; the
one module that talks to Ray Tune is pipeline.sweeps.tune_runner).

On a cluster the code travels with the job (runtime_env working_dir) and so do the variables
kdsweep reads, made absolute in the driver: a trial runs in the job's own working directory,
on any node, so "data/synthetic-wound" or the default "mlruns/" store would name another place
there. Datasets are not shipped: every node needs them at the same absolute path.

Ray 2.60 clusters started with `ray start --head` use token authentication: this client then
needs RAY_AUTH_MODE=token and the token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
~/.ray/auth_token). A cluster that cannot be reached, or refuses the client, is one line
(`ClusterError`) instead of Ray's retry log, before anything is written to MLflow.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import ClusterError, DataError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# what a trial needs from the driver's environment (values that are paths are made absolute)
PASS_ENV = (
    "RAY_CHDIR_TO_TRIAL_DIR",
    "KDSWEEP_CACHE",
    "KDSWEEP_SWEEPS_DIR",
    "HF_HUB_OFFLINE",
    "HF_HOME",
    "TOKENIZERS_PARALLELISM",
    "MINILM_DIR",
    # Token auth: the token's value, never RAY_AUTH_TOKEN_PATH (a file on the driver's machine
    # that other nodes lack; Ray aborts a process whose token file cannot be read).
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN",
)
# MLflow's client credentials (an authenticated tracking server). On a cluster they travel in
# memory (`share_credentials`), never in the job's runtime_env: Ray keeps that in its job table,
# where anyone who lists the cluster's jobs reads it.
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
HOLDER = "kdsweep-credentials"  # the named actor of a sweep's job that holds them
_HELD: list = []  # its handle, for as long as the driver runs
_OWN: list[bool] = []  # set while the Ray of this process is one `connect` started on this machine
PATHS = ("KDSWEEP_CACHE", "KDSWEEP_SWEEPS_DIR", "HF_HOME", "MINILM_DIR")
EXCLUDES = [".venv", "data", "mlruns", "docs", ".git", "**/__pycache__"]


def job_env() -> dict[str, str]:
    """Environment variables for every trial: PASS_ENV, every *_ROOT (dataset roots) and the
    tracking store, paths made absolute against the driver's working directory."""
    from pipeline.tracking import tracking_uri

    env = {k: os.environ[k] for k in PASS_ENV if os.environ.get(k)}
    env.update({k: v for k, v in os.environ.items() if k.endswith("_ROOT") and v})
    for k in [*PATHS, *(k for k in env if k.endswith("_ROOT"))]:
        if k in env:
            env[k] = os.path.abspath(env[k])
    env["MLFLOW_TRACKING_URI"] = tracking_uri()  # the default store is the driver's mlruns/
    return env


def trial_env() -> dict[str, str]:
    """What travels inside each trial's config and is set in its worker before the trial runs:
    job_env without credentials (a trial config is written to Ray Tune's storage). Workers of a
    Ray already running (a second sweep in the same process, or a notebook's own ray.init) were
    started with an earlier environment: without this their trials would log to that store."""
    secret = ("TOKEN", "PASSWORD", "SECRET")
    return {k: v for k, v in job_env().items() if not any(s in k for s in secret)}


def address() -> str:
    """RAY_ADDRESS: the cluster to join; empty for a Ray of this sweep's own on this machine."""
    return os.environ.get("RAY_ADDRESS", "").strip()


def connect() -> None:
    """ray.init once: on this machine, or the cluster at RAY_ADDRESS (checked first)."""
    import ray

    from pipeline.sweeps.output import local_auth_notice_dropped, ray_init_options

    if ray.is_initialized():
        return
    log = logging.getLogger("ray._private.worker")
    if threading.current_thread() is not threading.main_thread() and not log.filters:
        log.addFilter(_NotMainThread())  # sigterm_exits sets the handler instead
    env = job_env()
    cluster = address()
    if not cluster:
        # "local": a Ray of this sweep's own. Plain ray.init() would join whatever `ray start`
        # left on this machine (/tmp/ray/ray_current_cluster), and hang on a stale one. Its
        # processes inherit the job's environment (no runtime_env: nothing to set up per worker).
        # Ray turns token authentication on for it and says so on every run: kept, not said.
        # No prestarted workers: Ray starts one per CPU for the first driver, but Ray Tune gives
        # its trial actors a runtime_env of their own (PL_DISABLE_FORK), so a trial never takes
        # one (checked: every trial got a new worker) and each cost ~1 s of CPU for nothing.
        with _environ(env), local_auth_notice_dropped():
            ray.init(
                address="local",
                include_dashboard=False,
                _system_config={"prestart_worker_first_driver": False},
                **ray_init_options(),
            )
        _OWN[:] = [True]
        return
    _probe(cluster)
    runtime_env = {"env_vars": env, "working_dir": str(PROJECT_ROOT), "excludes": EXCLUDES}
    # Ray retries a refused connection for a while, logging each attempt from C++ to fd 2:
    # capture it, keep it only on success, and shorten the retries (the port answered already).
    wait = os.environ.get("RAY_gcs_server_port_wait_time_s")
    os.environ["RAY_gcs_server_port_wait_time_s"] = wait or "5"
    try:
        with _stderr_captured() as captured:
            try:
                ray.init(address=cluster, runtime_env=runtime_env, **ray_init_options())
            except Exception as e:
                raise ClusterError(_explain(cluster, captured(), e)) from None
    finally:
        if wait is None:
            os.environ.pop("RAY_gcs_server_port_wait_time_s", None)
    share_credentials()


def release_local() -> threading.Thread | None:
    """Shut down, in a thread, the Ray that `connect` started on this machine; its thread (which
    the interpreter joins before it exits), or None where this process started none (a cluster,
    or a Ray that was running before). Stopping Ray's processes takes seconds of waiting: the
    caller goes on meanwhile, with no further use of Ray."""
    import ray

    if not _OWN or not ray.is_initialized():
        return None
    _OWN.clear()
    thread = threading.Thread(target=ray.shutdown, name="kdsweep-ray-stop")
    thread.start()
    return thread


def share_credentials() -> None:
    """The driver's MLflow credentials (CREDENTIALS), held by a named actor of this job for the
    trials on every node (`credentials`). The actor lives as long as the job and asks for no CPU;
    nothing is written: not the runtime_env, a trial's config (Ray Tune's storage) or a log."""
    import ray

    values = {k: os.environ[k] for k in CREDENTIALS if os.environ.get(k)}
    if not values:
        return

    @ray.remote(num_cpus=0)
    class Holder:
        def __init__(self) -> None:
            self.values: dict[str, str] = {}

        def put(self, values: dict[str, str]) -> None:
            self.values = values

        def get(self) -> dict[str, str]:
            return self.values

    # the values go in a call, not the constructor: Ray keeps an actor's creation spec. The
    # handle is kept: an actor whose last handle goes out of scope is ended, named or not.
    holder = Holder.options(name=HOLDER).remote()
    ray.get(holder.put.remote(values))
    _HELD.append(holder)


def credentials() -> dict[str, str]:
    """In a trial: the credentials its driver shares (`share_credentials`), or none (a Ray of
    the sweep's own: its workers inherited the driver's environment)."""
    import ray

    try:
        holder = ray.get_actor(HOLDER)
    except ValueError:
        return {}
    return ray.get(holder.get.remote())


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ for the block (what the processes started meanwhile inherit)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sigterm_exits() -> None:
    """SIGTERM ends the driver through sys.exit, so Ray shuts down at exit: what ray.init sets
    up when it runs in the main thread (pipeline.sweeps.sweep.start_ray runs it in another)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))


class _NotMainThread(logging.Filter):
    """Drops ray.init's warning that it set no SIGTERM handler outside the main thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def _probe(address: str) -> None:
    """A TCP connection to the head first: an address where nothing listens would otherwise
    hang in Ray's retries for minutes."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(
            f"RAY_ADDRESS={address!r}: expected host:port of the head (e.g. 10.0.0.5:6379), "
            "ray://host:10001 or auto"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise ClusterError(
            f"cannot reach the Ray cluster at RAY_ADDRESS={address} ({e.strerror or e}): start it there "
            f"with `ray start --head --port {port}`, or set RAY_ADDRESS to the head's host:port"
        ) from None


def _explain(address: str, log: str, error: Exception) -> str:
    if "InvalidAuthToken" in log or "Unauthenticated" in log:
        if os.environ.get("RAY_AUTH_MODE", "").strip().lower() != "token":
            return (
                f"the Ray cluster at {address} requires token authentication: export RAY_AUTH_MODE=token "
                "(the token is read from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; "
                "`ray get-auth-token` on the head prints it)"
            )
        return (
            f"the Ray cluster at {address} rejected this client's token: set RAY_AUTH_TOKEN (or "
            "RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token) to the head's token (`ray get-auth-token` there)"
        )
    import ray

    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return (
        f"could not connect to the Ray cluster at {address} ({first}): check RAY_ADDRESS and that the "
        f"cluster runs Ray {ray.__version__} on Python {sys.version_info.major}.{sys.version_info.minor}"
    )


@contextmanager
def _stderr_captured() -> Iterator[Callable[[], str]]:
    """Redirect file descriptor 2 (C++ logs write there directly) to a temporary file; what was
    captured is written back on success and dropped on error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:

        def captured() -> str:
            tmp.flush()
            tmp.seek(0)
            return tmp.read().decode("utf-8", errors="replace")

        os.dup2(tmp.fileno(), 2)
        ok = False
        try:
            yield captured
            ok = True
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if ok:
                sys.stderr.write(captured())
                sys.stderr.flush()


def node() -> str:
    """This process's node: host name and IP address."""
    try:
        import ray.util

        ip = ray.util.get_node_ip_address()
    except Exception:  # not inside Ray
        ip = "?"
    return f"{socket.gethostname()} ({ip})"


def node_id() -> str:
    """This process's Ray node id ("" outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() or ""
    except Exception:
        return ""


def node_lost(node_id: str) -> bool:
    """Whether Ray node `node_id` is gone: the cluster has marked it dead, or its raylet no
    longer accepts connections. A trial's actor fails as soon as its node's processes die, but
    the cluster marks the node dead only after its health checks fail, seconds later; the raylet's
    port answers at once."""
    import ray

    for n in ray.nodes():
        if n.get("NodeID") != node_id:
            continue
        if not n.get("Alive", True):
            return True
        try:
            with socket.create_connection((n["NodeManagerAddress"], int(n["NodeManagerPort"])), timeout=2.0):
                return False
        except OSError:
            return True
    return False


def require_dataset(name: str, root: str) -> None:
    """In a trial: the dataset must be at the driver's absolute path on this node too."""
    if not Path(root).is_dir():
        raise DataError(
            f"node {node()}: dataset {name!r} not found at {root}: every node needs the dataset at "
            "this path (a shared filesystem, or a copy at the same path on every node)"
        )
