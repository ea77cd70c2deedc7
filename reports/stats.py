"""Numbers behind honest comparisons: mean +- std over seeds, bootstrap intervals of the test F1
(and of paired differences) from saved predictions, the expected F1 of guessing, the Pareto front."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


def fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def mean_std(values, digits: int = 4) -> str:
    """One value as is; two or more as mean ± std (sample std)."""
    v = [float(x) for x in values if x is not None and not np.isnan(x)]
    if not v:
        return "n/a"
    if len(v) == 1:
        return fmt(v[0], digits)
    return f"{fmt(float(np.mean(v)), digits)} ± {fmt(float(np.std(v, ddof=1)), digits)}"


def tasks_of(pred: pd.DataFrame) -> list[str]:
    return sorted({c.split("/")[0] for c in pred.columns if c.endswith("/label")})


def _macro_f1(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 of labels `y` vs predictions `p` [n] under each row of sample multiplicities
    `weights` [draws, n] (a bootstrap resample as counts), for all rows at once. As
    sklearn's f1_score(average="macro", zero_division=0): the mean over the classes present in
    the resample's labels or predictions of 2 TP / (2 TP + FP + FN)."""
    scores, present = [], []
    for c in np.union1d(y, p):
        tp = weights @ ((y == c) & (p == c))
        true_c, pred_c = weights @ (y == c), weights @ (p == c)
        denom = true_c + pred_c  # = 2 TP + FP + FN
        scores.append(np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0))
        present.append(denom > 0)
    s, m = np.array(scores), np.array(present)
    return (s * m).sum(0) / m.sum(0)


def _avg_f1(pred: pd.DataFrame, weights: np.ndarray, tasks: list[str]) -> np.ndarray:
    return np.mean(
        [_macro_f1(pred[f"{t}/label"].to_numpy(), pred[f"{t}/pred"].to_numpy(), weights) for t in tasks],
        axis=0,
    )


@functools.cache  # every comparison of a report resamples the same test set the same way
def _weights(m: int, n: int, seed: int) -> np.ndarray:
    """Row 0: the full test set; rows 1..n: bootstrap resamples of its m samples, as counts
    (read-only: shared by every caller)."""
    rng = np.random.default_rng(seed)
    rows = np.stack([rng.integers(0, m, m) for _ in range(n)])
    weights = np.zeros((n + 1, m))
    weights[0] = 1.0
    np.add.at(weights, (np.repeat(np.arange(1, n + 1), m), rows.ravel()), 1.0)
    weights.flags.writeable = False
    return weights


def _aligned(preds: list[pd.DataFrame]) -> list[pd.DataFrame]:
    out = [p.sort_values("index").reset_index(drop=True) for p in preds]
    if any(not np.array_equal(out[0]["index"].to_numpy(), p["index"].to_numpy()) for p in out):
        raise ValueError("the runs were tested on different samples")
    return out


def paired_bootstrap(
    a: pd.DataFrame | list[pd.DataFrame], b: pd.DataFrame | list[pd.DataFrame], n: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Test avg macro-F1 of a minus b, and its 95 % percentile interval from resampling the same
    test samples for both (paired: aligned by dataset index). Lists are the runs of matched seeds
    (a[i] and b[i] share a seed): the difference is the mean over seeds, every seed scored on the
    same resample. All resamples are scored at once from their confusion counts (milliseconds)."""
    a = [a] if isinstance(a, pd.DataFrame) else list(a)
    b = [b] if isinstance(b, pd.DataFrame) else list(b)
    if len(a) != len(b) or not a:
        raise ValueError("paired_bootstrap needs the same number (>= 1) of runs on each side")
    runs = _aligned(a + b)
    tasks = tasks_of(runs[0])
    weights = _weights(len(runs[0]), n, seed)
    d = np.mean(
        [
            _avg_f1(x, weights, tasks) - _avg_f1(y, weights, tasks)
            for x, y in zip(runs[: len(a)], runs[len(a) :], strict=True)
        ],
        axis=0,
    )
    lo, hi = np.percentile(d[1:], [2.5, 97.5])
    return float(d[0]), float(lo), float(hi)


def bootstrap_interval(preds: list[pd.DataFrame], n: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Test avg macro-F1 (mean over the runs of several seeds) and its 95 % percentile interval
    from resampling the test samples: the uncertainty that comes from the test set's size."""
    runs = _aligned(preds)
    tasks = tasks_of(runs[0])
    weights = _weights(len(runs[0]), n, seed)
    f = np.mean([_avg_f1(x, weights, tasks) for x in runs], axis=0)
    lo, hi = np.percentile(f[1:], [2.5, 97.5])
    return float(f[0]), float(lo), float(hi)


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


@dataclass
class FoldDiff:
    """Mean over the shared folds of a's value minus b's, with its t-interval."""

    diff: float
    lo: float
    hi: float
    folds: tuple[int, ...]

    @property
    def verdict(self) -> str:
        if self.lo > 0:
            return "higher beyond noise (the interval lies above 0)"
        if self.hi < 0:
            return "lower beyond noise (the interval lies below 0)"
        return "within noise (the interval contains 0)"

    def interval(self) -> str:
        return f"[{self.lo:+.4f}, {self.hi:+.4f}]"


def paired_folds(a: dict[int, float], b: dict[int, float], level: float = 0.95) -> FoldDiff | None:
    """a - b paired by fold (both validated on the same held-out fold); None under 2 shared folds.
    t-interval: mean ± t((1 + level) / 2, n - 1) · s / √n, s the sample std of the n differences."""
    from scipy.special import stdtrit  # the t quantile; scipy.stats takes seconds to import

    folds = tuple(sorted(set(a) & set(b)))
    if len(folds) < 2:
        return None
    d = np.array([a[f] - b[f] for f in folds])
    half = float(stdtrit(len(d) - 1, 0.5 + level / 2) * d.std(ddof=1) / math.sqrt(len(d)))
    m = float(d.mean())
    return FoldDiff(m, m - half, m + half, folds)
