"""The documents' charts, drawn so that they do not overstate: error bars only from two or more
seeds, Pareto fronts only across architectures (the caller decides), a y-axis wide enough to show
the test set's own uncertainty, and the value chosen on validation marked as such."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reports.plots.render import draw, figure
from reports.stats import pareto


def seeds_phrase(seeds: list[int] | tuple[int, ...]) -> str:
    return f"1 seed (seed {seeds[0]})" if len(seeds) == 1 else f"{len(seeds)} seeds"


def bars_caption(seeds: list[int] | tuple[int, ...]) -> str:
    if len(seeds) >= 2:
        return f"mean over {seeds_phrase(seeds)}, error bars: std over seeds"
    return f"{seeds_phrase(seeds)}: no error bars"


def f1_bars(
    names: list[str],
    values: list[list[float]],
    seeds: tuple[int, ...],
    chance: float,
    title: str,
    path: Path,
    teachers: Sequence[float] = (),
) -> str:
    """Mean test avg F1 per configuration over the same seeds; std error bars only with >= 2
    seeds (one seed has no spread to show: a zero-height bar would read as zero variance).
    `teachers`: their test avg F1 on the same seeds, drawn as lines (a reference, not a bar)."""
    return draw(_f1_bars, path, names, values, seeds, chance, title, teachers)


def _f1_bars(
    names: list[str],
    values: list[list[float]],
    seeds: tuple[int, ...],
    chance: float,
    title: str,
    teachers: Sequence[float] = (),
) -> Any:
    fig, ax = figure()
    means = [float(np.mean(v)) for v in values]
    if len(seeds) >= 2:
        errs = [float(np.std(v, ddof=1)) for v in values]
        ax.bar(names, means, yerr=errs, capsize=4, color="#4C72B0")
    else:
        ax.bar(names, means, color="#4C72B0")
    ax.axhline(chance, color="grey", linestyle="--", label="chance")
    for i, t in enumerate(v for v in teachers if not math.isnan(v)):
        ax.axhline(t, color="#C44E52", linestyle=":", label="teacher" if i == 0 else None)
    ax.set_ylabel("test avg macro-F1")
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.set_title(f"{title} ({bars_caption(seeds)})", fontsize=9)
    # beside the axes, not on them: inside, it covered the bars it explains
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=8)
    return fig


def bars(names: list[str], values: list[float], title: str, path: Path) -> str:
    """One bar of test avg macro-F1 per name (no error bars: the caller says over which seeds)."""
    return draw(_bars, path, names, values, title)


def _bars(names: list[str], values: list[float], title: str) -> Any:
    fig, ax = figure()
    ax.bar(names, values, color="#55A868")
    ax.set_ylabel("test avg macro-F1")
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.set_title(title, fontsize=9)
    return fig


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
    return draw(_pareto_plot, path, labels, latency, intervals, title)


def _pareto_plot(
    labels: list[str],
    latency: list[float],
    intervals: list[tuple[float, float, float]],
    title: str,
) -> Any:
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
    return fig


def heatmap(
    grid: np.ndarray, xticks: list[str], yticks: list[str], axes: tuple[str, str], title: str, path: Path
) -> str:
    """A grid of test avg F1 (rows: y, columns: x), e.g. KD temperature against alpha."""
    return draw(_heatmap, path, grid, xticks, yticks, axes, title)


def _heatmap(
    grid: np.ndarray, xticks: list[str], yticks: list[str], axes: tuple[str, str], title: str
) -> Any:
    fig, ax = figure(4.5, 3.5)
    im = ax.imshow(grid, cmap="viridis")
    ax.set_xticks(range(len(xticks)), xticks)
    ax.set_yticks(range(len(yticks)), yticks)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, label="test avg F1")
    return fig


def lines(x: list[float], series: list[tuple[str, np.ndarray]], xlabel: str, title: str, path: Path) -> str:
    """Test avg macro-F1 against `x`, one marked line per (label, values)."""
    return draw(_lines, path, x, series, xlabel, title)


def _lines(x: list[float], series: list[tuple[str, np.ndarray]], xlabel: str, title: str) -> Any:
    fig, ax = figure()
    for label, ys in series:
        ax.plot(x, ys, marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test avg macro-F1")
    ax.set_title(title, fontsize=9)
    ax.legend()
    return fig


def sensitivity_plot(
    values: list[float],
    val: list[float],
    test: list[float],
    chosen: float | None,
    name: str,
    title: str,
    path: Path,
) -> str:
    """Validation and test macro AUC against a KD hyper-parameter; the value chosen on
    validation marked (test is drawn for reading, never for choosing)."""
    return draw(_sensitivity_plot, path, values, val, test, chosen, name, title)


def _sensitivity_plot(
    values: list[float],
    val: list[float],
    test: list[float],
    chosen: float | None,
    name: str,
    title: str,
) -> Any:
    fig, ax = figure()
    ax.plot(values, val, marker="o", label="validation AUC")
    ax.plot(values, test, marker="s", label="test AUC")
    if chosen is not None:
        ax.axvline(chosen, color="#C44E52", linestyle=":", label=f"chosen on validation ({name}={chosen:g})")
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.set_xlabel(name)
    ax.set_ylabel("macro AUC")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def loss_plot(curves: dict[str, dict[int, float]], title: str, path: Path) -> str:
    """The total loss and each weighted term (train/<term>) per epoch."""
    return draw(_loss_plot, path, curves, title)


def _loss_plot(curves: dict[str, dict[int, float]], title: str) -> Any:
    fig, ax = figure()
    for key in sorted(curves, key=lambda k: (k != "train/loss", k)):  # total first, then terms by name
        steps = sorted(curves[key])
        style = {"linewidth": 2, "color": "black"} if key == "train/loss" else {"linewidth": 1}
        ax.plot(steps, [curves[key][s] for s in steps], marker=".", label=key.removeprefix("train/"), **style)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss (weighted term)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def auc_curves(panels: list[tuple[str, dict[int, dict[int, float]]]], title: str, path: Path) -> str:
    """`panels`: (name, {fold: {epoch: validation AUC}}) per configuration, two panels a row."""
    return draw(_auc_curves, path, panels, title)


def _auc_curves(panels: list[tuple[str, dict[int, dict[int, float]]]], title: str) -> Any:
    from matplotlib.ticker import MaxNLocator

    cols = min(len(panels), 2)
    rows = math.ceil(len(panels) / cols)
    fig, ax = figure(5 * cols, 3 * rows)
    ax.remove()
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for a, (name, folds) in zip(axes, panels, strict=False):
        for fold in sorted(folds):
            steps = sorted(folds[fold])
            a.plot(steps, [folds[fold][s] for s in steps], marker=".", linewidth=1, label=f"fold {fold}")
        a.set_ylim(0, 1.02)  # the same scale in every panel: swings compare across options
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_title(name, fontsize=8)
        a.set_xlabel("epoch", fontsize=7)
        a.set_ylabel("validation AUC", fontsize=7)
        if folds:
            a.legend(fontsize=6, loc="lower right")
        else:
            a.text(0.5, 0.5, "no per-epoch history", ha="center", fontsize=7, transform=a.transAxes)
    for a in axes[len(panels) :]:
        a.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
