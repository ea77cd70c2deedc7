"""Writing figures byte-for-byte reproducibly, and off the documents' critical path.

Rendering a figure to PNG is a third of a report's time. In `python -m reports` (see `beside`)
one forked worker process renders them while the documents' statistics go on; elsewhere (a
test, a sweep's closing report, where forking a process with threads is not safe) inline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_WORKER: list[Any] = []  # the pool of `beside`, while it is open
_PENDING: list[Any] = []  # figures handed to the worker, not yet known to be on disk


def _write(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=100, metadata={"Software": None}, bbox_inches="tight")


def _build_and_write(build: Callable[..., Any], path: str, args: tuple, kwargs: dict) -> None:
    _write(build(*args, **kwargs), Path(path))


def draw(build: Callable[..., Any], path: Path, *args: Any, **kwargs: Any) -> str:
    """Write the figure `build(*args, **kwargs)` returns to `path`, byte-for-byte reproducibly (no
    timestamp or software metadata); in the worker where one is open (`drawn` waits for it).
    `build` is a module-level function and its arguments plain data: the worker is handed them,
    never a drawn Figure. A pickled Figure keys each transform's parents by the id() they had in
    this process; in the worker a new object could take such an id and unhook a legend handle's
    offset, which then drew a pixel run elsewhere from one run to the next. Returns the link a
    document shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if _WORKER:
        _PENDING.append(_WORKER[0].submit(_build_and_write, build, str(path), args, kwargs))
    else:
        _write(build(*args, **kwargs), path)
    return f"img/{path.name}"  # no pyplot registry to leave: the figure goes with its last reference


def drawn() -> None:
    """Wait until every figure handed to `draw` is on disk (a drawing error is raised here)."""
    while _PENDING:
        _PENDING.pop(0).result()


@contextmanager
def beside() -> Iterator[None]:
    """Draw the figures asked for inside in one worker process (forked, so it starts with this
    process's imports: no second matplotlib import), on Linux (where fork is safe and usual)
    with 2+ cores for this process."""
    import multiprocessing
    import os

    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        yield
        return
    from concurrent.futures import ProcessPoolExecutor

    _WORKER.append(ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")))
    # Forked now, not at the first figure: by then this process may run threads (MLflow's
    # client), and a fork copies only the thread that calls it (a lock another one held stays held).
    _WORKER[0].submit(os.getpid).result()
    try:
        yield
        drawn()
    finally:
        _PENDING.clear()
        _WORKER.pop().shutdown(cancel_futures=True)


def figure(width: float = 6, height: float = 3.5) -> tuple[Any, Any]:
    """A new (figure, axes) drawn by Agg (no display needed), made without pyplot: the figure
    is the same as plt.subplots' and pyplot's import and global state cost a report time."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matplotlib.rcParams["svg.hashsalt"] = "kdsweep"
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()
