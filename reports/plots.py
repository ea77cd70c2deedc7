"""Figures of the documents, written byte-for-byte reproducibly, drawn so that they do not
overstate: error bars only from two or more seeds, Pareto fronts only across architectures, and
a y-axis wide enough to show the test set's own uncertainty."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# Rendering a figure to PNG is a third of a report's time. In `python -m reports` (see `beside`)
# one forked worker process renders them while the documents' statistics go on; elsewhere (a
# test, a sweep's closing report, where forking a process with threads is not safe) inline.
_WORKER: list[Any] = []  # the pool of `beside`, while it is open
_PENDING: list[Any] = []  # figures handed to the worker, not yet known to be on disk


def _write(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=100, metadata={"Software": None}, bbox_inches="tight")


def _write_pickled(data: bytes, path: str) -> None:
    _write(pickle.loads(data), Path(path))  # a figure pickles whole: its artists, not its canvas


def save(fig: Any, path: Path) -> str:
    """Write a figure byte-for-byte reproducibly (no timestamp or software metadata); in the
    worker where one is open (`drawn` waits for it)."""
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


def seeds_phrase(seeds: list[int] | tuple[int, ...]) -> str:
    return f"1 seed (seed {seeds[0]})" if len(seeds) == 1 else f"{len(seeds)} seeds"


def bars_caption(seeds: list[int] | tuple[int, ...]) -> str:
    if len(seeds) >= 2:
        return f"mean over {seeds_phrase(seeds)}, error bars: std over seeds"
    return f"{seeds_phrase(seeds)}: no error bars"


def f1_bars(
    names: list[str], values: list[list[float]], seeds: tuple[int, ...], chance: float, title: str, path: Path
) -> str:
    """Mean test avg F1 per configuration over the same seeds; std error bars only with >= 2
    seeds (one seed has no spread to show: a zero-height bar would read as zero variance)."""
    fig, ax = figure()
    means = [float(np.mean(v)) for v in values]
    if len(seeds) >= 2:
        errs = [float(np.std(v, ddof=1)) for v in values]
        ax.bar(names, means, yerr=errs, capsize=4, color="#4C72B0")
    else:
        ax.bar(names, means, color="#4C72B0")
    ax.axhline(chance, color="grey", linestyle="--", label="chance")
    ax.set_ylabel("test avg macro-F1")
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.set_title(f"{title} ({bars_caption(seeds)})", fontsize=9)
    ax.legend()
    return save(fig, path)


def pareto_plot(
    labels: list[str],
    latency: list[float],
    intervals: list[tuple[float, float, float]],
    title: str,
    path: Path,
) -> str:
    """F1 against latency, the Pareto front (faster and better) in red and joined by a line.

    `intervals`: (F1, low, high) per point, the 95 % bootstrap interval over test samples, drawn
    as error bars; the y-axis spans them, so points whose intervals overlap look as close as
    they are instead of a zoom that turns noise into a ranking."""
    from reports.stats import pareto

    f1 = [i[0] for i in intervals]
    front = pareto(latency, f1)
    fig, ax = figure()
    for label, x, (y, lo, hi), on in zip(labels, latency, intervals, front, strict=True):
        color = "#C44E52" if on else "#8C8C8C"
        ax.errorbar(x, y, yerr=[[max(y - lo, 0.0)], [max(hi - y, 0.0)]], fmt="o", color=color, capsize=3)
        ax.annotate(label, (x, y), fontsize=7, xytext=(4, 2), textcoords="offset points")
    pts = sorted((x, y) for x, y, on in zip(latency, f1, front, strict=True) if on)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#C44E52", label="Pareto front")
    lows, highs = [i[1] for i in intervals], [i[2] for i in intervals]
    pad = 0.25 * max(max(highs) - min(lows), 0.02)
    ax.set_ylim(min(lows) - pad, max(highs) + pad)
    ax.set_xlabel("latency (ms, median)")
    ax.set_ylabel("test avg macro-F1 (95 % bootstrap interval)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    return save(fig, path)
