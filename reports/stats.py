"""Numbers behind honest comparisons: cells (mean ± std over seeds), the one difference type every
document judges the same way (`Diff`: an interval above 0, below 0, or containing it), paired
t-intervals over cross-validation folds, the expected F1 of guessing and the Pareto front.
Bootstrap intervals over test samples: reports.resample."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


def fmt(x: float | None, digits: int = 4) -> str:
    """A number with `digits` decimals; n/a for None or NaN (a metric a run did not log)."""
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def mean_std(values: Iterable[float | None], digits: int = 4) -> str:
    """One value as is; two or more as mean ± std (sample std): the spread over seeds or folds."""
    v = [float(x) for x in values if x is not None and not np.isnan(x)]
    if not v:
        return "n/a"
    if len(v) == 1:
        return fmt(v[0], digits)
    return f"{fmt(float(np.mean(v)), digits)} ± {fmt(float(np.std(v, ddof=1)), digits)}"


def seeds_text(seeds: tuple[int, ...] | list[int]) -> str:
    """'seed 0' or 'seeds 0, 1': which seeds a comparison paired."""
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


class Verdicts(NamedTuple):
    """A document's words for a difference whose interval lies above 0, below 0, or contains 0."""

    above: str
    below: str
    within: str


@dataclass(frozen=True)
class Diff:
    """a − b with its 95 % interval [lo, hi] and what was paired: `seeds` (a bootstrap over
    `samples` test samples, runs of one seed paired) or `folds` (a t-interval over the folds that
    validated both). One rule for every document, so that no two call the same numbers differently:
    beyond noise only when the interval excludes 0 (`sign`)."""

    diff: float
    lo: float
    hi: float
    seeds: tuple[int, ...] = ()
    folds: tuple[int, ...] = ()
    samples: int = 0
    p: float = math.nan  # two-sided p of "no difference" (the bootstrap's), where one was computed
    family: int = 1  # comparisons of the table this one was judged in (`holm_adjusted`)
    p_adj: float = math.nan  # p Holm-adjusted over the family

    @property
    def sign(self) -> int:
        """+1: a beats b beyond noise; −1: b beats a; 0: noise (or NaN bounds). Alone: the interval
        above 0, below 0, or containing it. One of several comparisons of a table: the Holm-adjusted
        p below 0.05 (for one comparison the two rules agree: the percentile interval excludes 0
        exactly when the bootstrap p is below 0.05)."""
        if self.family > 1:
            return 0 if not self.p_adj < 0.05 else 1 if self.diff > 0 else -1
        return 1 if self.lo > 0 else -1 if self.hi < 0 else 0

    @property
    def clear(self) -> bool:
        return self.sign != 0

    def verdict(self, words: Verdicts) -> str:
        if self.sign == 0 and self.family > 1:  # the reason is the adjusted p, not the interval
            return f"{words.within.split(' (')[0]} (adjusted p ≥ 0.05)"
        return words.above if self.sign > 0 else words.below if self.sign < 0 else words.within

    def interval(self) -> str:
        return f"[{self.lo:+.4f}, {self.hi:+.4f}]"

    def p_cell(self) -> str:
        """The p a table shows: Holm-adjusted in a family, raw alone; n/a without one."""
        return fmt_p(self.p_adj if self.family > 1 else self.p)


def fmt_p(p: float) -> str:
    """A p-value for a table: 3 decimals, `< 0.001` below that, n/a for NaN."""
    return "n/a" if math.isnan(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


def holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979, "A simple sequentially rejective multiple test
    procedure"): with the m p-values sorted p_(1) <= ... <= p_(m), the adjusted
    p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)); rejecting where it is below alpha controls the
    family-wise error at alpha. NaN p-values (comparisons that could not be made) stay NaN and do
    not count in m."""
    known = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    out = [math.nan] * len(ps)
    m, running = len(known), 0.0
    for j, (p, i) in enumerate(known):
        running = max(running, min(1.0, (m - j) * p))
        out[i] = running
    return out


def holm_adjusted(diffs: list[Diff | None]) -> list[Diff | None]:
    """The differences of one table judged as one family: their p Holm-adjusted over those with a
    p (`family` their number; a family of one is judged by its interval as before)."""
    adj = holm([math.nan if d is None else d.p for d in diffs])
    m = sum(not math.isnan(a) for a in adj)
    return [
        None if d is None else dataclasses.replace(d, family=m, p_adj=a)
        for d, a in zip(diffs, adj, strict=True)
    ]


def paired_folds(a: dict[int, float], b: dict[int, float], level: float = 0.95) -> Diff | None:
    """a - b paired by fold (both validated on the same held-out fold); None under 2 shared folds.
    t-interval: mean ± t((1 + level) / 2, n - 1) · s / √n, s the sample std of the n differences."""
    from scipy.special import stdtrit  # the t quantile; scipy.stats takes seconds to import

    folds = tuple(sorted(set(a) & set(b)))
    if len(folds) < 2:
        return None
    d = np.array([a[f] - b[f] for f in folds])
    half = float(stdtrit(len(d) - 1, 0.5 + level / 2) * d.std(ddof=1) / math.sqrt(len(d)))
    m = float(d.mean())
    return Diff(m, m - half, m + half, folds=folds)


def _binom_pmf(s: np.ndarray, n: int, p: float) -> np.ndarray:
    """scipy.stats.binom.pmf(s, n, p) for s = 0..n, through the ufunc it calls (the same values):
    importing scipy.stats takes about a second, scipy.special a third of that."""
    try:
        from scipy.special._ufuncs import _binom_pmf
    except ImportError:  # a scipy without it: the public way
        from scipy.stats import binom

        return binom.pmf(s, n, p)
    return np.clip(_binom_pmf(s, n, p), 0, 1)


def uniform_guess_f1(labels: np.ndarray, k: int) -> float:
    """Expected macro-F1 over all k classes (zero_division=0, as the pipeline scores) when each
    test sample's class is guessed uniformly at random, given the test labels.

    For class c with n_c of the N labels, the number S of samples guessed c is Binomial(N, 1/k)
    and, given S = s, its true positives are hypergeometric with mean s n_c / N, so
    E[F1_c] = sum_s P(S = s) 2 s n_c / (N (n_c + s)); exact, O(N) per class. It equals 1/k only
    in the limit of balanced labels and many samples; imbalance lowers it."""
    labels = np.asarray(labels)
    total = len(labels)
    if total == 0 or k < 1:
        return float("nan")
    s = np.arange(total + 1)
    p_s = _binom_pmf(s, total, 1.0 / k)
    scores = []
    for c in range(k):
        n_c = int(np.sum(labels == c))
        scores.append(float(np.sum(p_s * 2 * s * n_c / (total * (n_c + s)))) if n_c else 0.0)
    return float(np.mean(scores))


def pareto(latency: list[float], f1: list[float]) -> list[bool]:
    """True where no other point is at least as fast and at least as good, and better in one."""
    out = []
    for i, (li, fi) in enumerate(zip(latency, f1, strict=True)):
        dominated = any(
            lj <= li and fj >= fi and (lj < li or fj > fi)
            for j, (lj, fj) in enumerate(zip(latency, f1, strict=True))
            if j != i
        )
        out.append(not dominated)
    return out
