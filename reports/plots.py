"""Figures of the documents, written byte-for-byte reproducibly, drawn so that they do not
overstate: error bars only from two or more seeds, Pareto fronts only across architectures, and
a y-axis wide enough to show the test set's own uncertainty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def save(fig: Any, path: Path) -> str:
    """Write a figure byte-for-byte reproducibly (no timestamp or software metadata)."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return f"img/{path.name}"


def figure(width: float = 6, height: float = 3.5) -> tuple[Any, Any]:
    """A new (figure, axes) on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "kdsweep"
    return plt.subplots(figsize=(width, height))


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
