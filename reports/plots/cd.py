"""The critical-difference diagram of Demšar (2006, "Statistical comparisons of classifiers over
multiple data sets", JMLR 7): average ranks on an axis (best, rank 1, on the left), a bar of one
critical difference, and a thick line joining each maximal group of configurations whose ranks
are within it (not significantly different by the Nemenyi test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports.plots.render import draw, figure


def cd_diagram(
    names: list[str], ranks: list[float], cd: float, cliques: list[tuple[int, int]], title: str, path: Path
) -> str:
    """`names`/`ranks` sorted best first; `cliques`: (first, last) index of each maximal run of
    configurations within `cd` of each other (two or more)."""
    return draw(_cd_diagram, path, names, ranks, cd, cliques, title)


def _cd_diagram(
    names: list[str], ranks: list[float], cd: float, cliques: list[tuple[int, int]], title: str
) -> Any:
    k = len(names)
    fig, ax = figure(6, 1.2 + 0.28 * k)
    lo, hi = 1, max(k, 2)
    ax.set_xlim(lo - 0.3, hi + 0.3)
    ax.set_ylim(-(k + 1.5), 1.5)
    ax.hlines(0, lo, hi, color="black", linewidth=1)
    for r in range(lo, hi + 1):
        ax.vlines(r, 0, 0.25, color="black", linewidth=1)
        ax.text(r, 0.45, str(r), ha="center", fontsize=8)
    for i, (name, rank) in enumerate(zip(names, ranks, strict=True)):
        y = -(i + 1)
        ax.vlines(rank, y, 0, color="#4C72B0", linewidth=0.8)
        ax.plot(rank, 0, "o", color="#4C72B0", markersize=3)
        ax.text(hi + 0.35, y, f"{name} ({rank:.2f})", va="center", fontsize=8)
        ax.hlines(y, rank, hi + 0.3, color="#4C72B0", linewidth=0.8)
    ax.hlines(1.1, lo, lo + cd, color="#C44E52", linewidth=2)
    ax.text(lo + cd / 2, 1.25, f"CD = {cd:.2f}", ha="center", fontsize=8, color="#C44E52")
    for j, (a, b) in enumerate(cliques):
        y = -0.35 - 0.25 * j
        ax.hlines(y, ranks[a] - 0.05, ranks[b] + 0.05, color="black", linewidth=3)
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return fig
