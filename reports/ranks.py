"""Configurations compared across datasets and tasks: average ranks, the Friedman test and the
Nemenyi post-hoc test (Demšar 2006, "Statistical comparisons of classifiers over multiple data
sets", JMLR 7: 1-30).

Blocks are (dataset, task) pairs; in each, the k configurations are ranked by test macro-F1 of
that task (mean over the sweep's matched seeds; 1 = best, ties share the mean rank). With N
blocks and average ranks R_j:
- Friedman: chi2_F = 12 N / (k (k + 1)) * (sum_j R_j^2 - k (k + 1)^2 / 4) on k - 1 degrees of
  freedom (scipy.stats.friedmanchisquare, which also corrects for ties);
- Nemenyi: two configurations differ when their average ranks differ by at least
  CD = q_alpha sqrt(k (k + 1) / (6 N)), q_alpha the studentized range quantile (k groups,
  infinite degrees of freedom) over sqrt(2), alpha 0.05.
Only configurations present in every block are ranked (a complete block design)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reports.groups import Group, configs, tasks
from reports.markdown import table
from reports.plots.cd import cd_diagram
from reports.query import Sweep
from reports.stats import fmt, fmt_p


@dataclass(frozen=True)
class Ranked:
    names: list[str]  # best average rank first
    ranks: list[float]
    blocks: list[str]
    scores: np.ndarray  # [blocks, configurations], in `names` order
    chi2: float
    p: float
    cd: float

    def cliques(self) -> list[tuple[int, int]]:
        """(first, last) of each maximal run of 2+ configurations within CD of each other."""
        out: list[tuple[int, int]] = []
        for i in range(len(self.ranks)):
            j = max(j for j in range(i, len(self.ranks)) if self.ranks[j] - self.ranks[i] < self.cd)
            if j > i and not any(a <= i and j <= b for a, b in out):
                out.append((i, j))
        return out


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Demšar's critical difference for k configurations over n blocks."""
    from scipy.stats import studentized_range

    q = float(studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6 * n))


def rank(blocks: list[str], names: list[str], scores: np.ndarray) -> Ranked:
    """Average ranks (higher score = better = rank 1), Friedman and Nemenyi; `scores` [blocks, names]."""
    from scipy.stats import friedmanchisquare, rankdata

    r = np.vstack([rankdata(-row) for row in scores])
    avg = r.mean(0)
    order = sorted(range(len(names)), key=lambda j: (avg[j], names[j]))
    chi2, p = friedmanchisquare(*scores.T)
    return Ranked(
        [names[j] for j in order],
        [float(avg[j]) for j in order],
        blocks,
        scores[:, order],
        float(chi2),
        float(p),
        nemenyi_cd(len(names), len(blocks)),
    )


def across(
    sweeps: list[Sweep], key: Callable[[Group], str], what: str, img: Path, stem: str, plural: str = ""
) -> list[str]:
    """The section: ranks table, Friedman and Nemenyi, the CD diagram; a sentence instead when
    fewer than 3 configurations or 3 blocks leave nothing to test; nothing for one dataset."""
    plural = plural or f"{what}s"
    title = f"### {plural.capitalize()} ranked across datasets and tasks"
    latest = {s.dataset: s for s in sorted(sweeps, key=lambda s: (s.start_time, s.run_id))}
    per: dict[str, dict[str, float]] = {}
    for s in latest.values():  # one sweep per dataset: the latest (blocks must not repeat a dataset)
        cs = [c for c in configs(s) if c.ok]
        for t in tasks(s):
            best: dict[str, float] = {}
            for c in cs:  # the configuration's best on dev of each `what` (the table's order)
                best.setdefault(key(c), c.fair.mean(f"test/{t}/f1"))
            per[f"{s.dataset} / {t}"] = best
    if len(latest) < 2 or not per:  # one dataset, or sweeps without a FINISHED run
        return []
    common = sorted(set.intersection(*(set(b) for b in per.values())))
    blocks = sorted(per)
    scores = np.array([[per[b][n] for n in common] for b in blocks]) if common else np.zeros((0, 0))
    if len(common) < 3 or len(blocks) < 3 or np.isnan(scores).any():
        return [
            title,
            "",
            f"Too few to test: {len(common)} {plural} in every one of {len(blocks)} dataset/task blocks "
            "(the Friedman test needs 3 or more of each, with a test F1 in every cell).",
            "",
        ]
    res = rank(blocks, common, scores)
    dropped = sorted(set().union(*(set(b) for b in per.values())) - set(common))
    rows = [
        [f"`{n}`", f"{r:.2f}", *(fmt(x, 3) for x in res.scores[:, j])]
        for j, (n, r) in enumerate(zip(res.names, res.ranks, strict=True))
    ]
    same = [f"`{res.names[a]}` … `{res.names[b]}`" for a, b in res.cliques()]
    lines = [
        title,
        "",
        f"Each {what} at its best configuration on dev, scored by the test macro-F1 of each task on "
        f"each dataset (the latest {what} sweep of each; mean over its matched seeds); ranked within each of the {len(blocks)} "
        "blocks (1 = best). Friedman test of equal ranks, then Nemenyi's critical difference "
        "(Demšar 2006, α = 0.05) for pairs.",
        "",
        *table([what.capitalize(), "Average rank", *blocks], rows, "l" + "r" * (len(blocks) + 1)),
        "",
        f"Friedman χ² = {res.chi2:.2f} ({len(common) - 1} df), p = {fmt_p(res.p)}"
        + (
            ": the ranks differ."
            if res.p < 0.05
            else ": no evidence that the ranks differ at all; the pairs below are not tested further."
        ),
        f"Nemenyi critical difference: {res.cd:.2f} ranks.",
    ]
    if res.p < 0.05:
        lines.append(
            "Not significantly different (within one CD): " + "; ".join(same) + "."
            if same
            else "Every pair differs by more than one CD."
        )
    if dropped:
        lines.append(f"Not ranked (missing on some dataset or task): {', '.join(f'`{d}`' for d in dropped)}.")
    rel = cd_diagram(
        res.names,
        res.ranks,
        res.cd,
        res.cliques(),
        f"{plural}: average rank over {len(blocks)} blocks",
        img / f"{stem}_cd.png",
    )
    return lines + ["", f"![critical difference diagram]({rel})", ""]
