"""Writing figures byte-for-byte reproducibly, and off the documents' critical path.

Rendering a figure to PNG is a third of a report's time. In `python -m reports` (see `beside`)
one forked worker process renders them while the documents' statistics go on; elsewhere (a
test, a sweep's closing report, where forking a process with threads is not safe) inline.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_WORKER: list[Any] = []  # the pool of `beside`, while it is open
_PENDING: list[Any] = []  # figures handed to the worker, not yet known to be on disk


def _write(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=100, metadata={"Software": None}, bbox_inches="tight")


def _write_pickled(data: bytes, path: str) -> None:
    _write(pickle.loads(data), Path(path))  # a figure pickles whole: its artists, not its canvas


def save(fig: Any, path: Path) -> str:
    """Write a figure byte-for-byte reproducibly (no timestamp or software metadata); in the
    worker where one is open (`drawn` waits for it). Returns the link a document shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if _WORKER:
        _PENDING.append(_WORKER[0].submit(_write_pickled, pickle.dumps(fig), str(path)))
    else:
        _write(fig, path)
    return f"img/{path.name}"  # no pyplot registry to leave: the figure goes with its last reference


def drawn() -> None:
    """Wait until every figure handed to `save` is on disk (a drawing error is raised here)."""
    while _PENDING:
        _PENDING.pop(0).result()


@contextmanager
def beside() -> Iterator[None]:
    """Render the figures saved inside in one worker process (forked, so it starts with this
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
    # client) and has measured text, and a worker forked at a moment that varied drew some
    # figures' text a pixel apart from run to run (a report's PNGs must be byte-identical).
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
