"""The one bootstrap of the reports: the test samples drawn with replacement from a fixed seed
(deterministic), the same draws for every run compared (paired: aligned by sample index), every
resample scored at once from its sample counts. Two scorers: macro-F1 averaged over tasks (saved
class predictions) and macro AUC over labels (saved probabilities). The interval is the
uncertainty that comes from the test set's size.

Predictions (predictions/test.csv of a run): `index`, then per task `<task>/label`, `<task>/pred`
and `<task>/p/<class>` (single-label), or per label `<task>/<label>/label` and `<task>/<label>/p`
(multilabel).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from reports.stats import Diff

RESAMPLES = 1000
CHUNK = 100  # resamples scored at once: bounds memory on a large test set
_KEEP = 20_000_000  # draws of at most this many counts are kept for the next comparison (160 MB)

Scorer = Callable[[pd.DataFrame, np.ndarray], np.ndarray]  # (predictions, counts [rows, n]) -> [rows]


def _draw(m: int, n: int, seed: int) -> Iterator[np.ndarray]:
    """Row 0: the full test set; then n resamples of its m samples as counts, CHUNK rows at a time."""
    rng = np.random.default_rng(seed)
    yield np.ones((1, m))
    for start in range(0, n, CHUNK):
        k = min(CHUNK, n - start)
        yield np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(k)]).astype(float)


@functools.cache  # every comparison of a report resamples the same test set the same way
def _kept(m: int, n: int, seed: int) -> tuple[np.ndarray, ...]:
    chunks = tuple(_draw(m, n, seed))
    for c in chunks:
        c.flags.writeable = False  # shared by every caller
    return chunks


def draws(m: int, n: int = RESAMPLES, seed: int = 0) -> Iterator[np.ndarray]:
    """The sample counts of the full set and of `n` resamples, in chunks of rows (kept when small)."""
    return iter(_kept(m, n, seed)) if m * (n + 1) <= _KEEP else _draw(m, n, seed)


# --- scorers --------------------------------------------------------------------------------


def tasks_of(pred: pd.DataFrame) -> list[str]:
    """The single-label tasks of saved predictions (`<task>/label` columns)."""
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


def f1_scorer(tasks: list[str]) -> Scorer:
    """Test macro-F1 averaged over `tasks` (the pipeline's avg_f1)."""

    def score(pred: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
        return np.mean(
            [_macro_f1(pred[f"{t}/label"].to_numpy(), pred[f"{t}/pred"].to_numpy(), weights) for t in tasks],
            axis=0,
        )

    return score


def accuracy_scorer(task: str) -> Scorer:
    """The share of test samples whose `task` prediction is right (a McNemar test's quantity)."""

    def score(pred: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
        right = (pred[f"{task}/label"].to_numpy() == pred[f"{task}/pred"].to_numpy()).astype(float)
        return (weights @ right) / weights.sum(1)

    return score


def labels_of(pred: pd.DataFrame, task: str) -> list[str]:
    """A multilabel task's labels in the model's head order (the column order of the file)."""
    return [
        c[len(task) + 1 : -len("/label")]
        for c in pred.columns
        if c.startswith(f"{task}/") and c.endswith("/label")
    ]


def weighted_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of scores `p` [n] for 0/1 labels `y` [n] under each row of sample multiplicities
    `weights` [draws, n] (a resample as counts), all rows at once: the Mann-Whitney statistic,
    ties counted half, as sklearn's roc_auc_score on the resampled rows. NaN where a row has
    only one class."""
    order = np.argsort(p, kind="mergesort")
    ps, pos = p[order], y[order] == 1
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])  # groups of equal scores
    w = weights[:, order]
    wpos = np.add.reduceat(w * pos, starts, axis=1)
    wneg = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(wneg, axis=1) - wneg
    num = (wpos * (below + 0.5 * wneg)).sum(1)
    npos, nneg = wpos.sum(1), wneg.sum(1)
    denom = npos * nneg
    return np.divide(num, denom, out=np.full(len(num), np.nan), where=denom > 0)


def _nanmean(a: np.ndarray) -> np.ndarray:
    """Column means over the rows that are not NaN (NaN where none is): np.nanmean, no warning."""
    ok = ~np.isnan(a)
    total = np.where(ok, a, 0.0).sum(0)
    n = ok.sum(0)
    return np.divide(total, n, out=np.full(a.shape[1:], np.nan), where=n > 0)


def auc_scorer(tasks: list[str]) -> Scorer:
    """Mean over tasks of the macro AUC over the labels with both classes present (in the
    resample), as the pipeline scores multilabel runs."""

    def score(pred: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
        per_task = []
        for t in tasks:
            aucs = [
                weighted_auc(pred[f"{t}/{c}/label"].to_numpy(), pred[f"{t}/{c}/p"].to_numpy(float), weights)
                for c in labels_of(pred, t)
            ]
            per_task.append(_nanmean(np.array(aucs)))
        return _nanmean(np.array(per_task))

    return score


# --- intervals ------------------------------------------------------------------------------


def _aligned(preds: list[pd.DataFrame], unit: str) -> list[pd.DataFrame]:
    out = [p.sort_values("index").reset_index(drop=True) for p in preds]
    if any(not np.array_equal(out[0]["index"].to_numpy(), p["index"].to_numpy()) for p in out):
        raise ValueError(f"the runs were tested on different {unit}")
    return out


def paired(
    a: list[pd.DataFrame],
    b: list[pd.DataFrame],
    score: Scorer,
    seeds: tuple[int, ...] = (),
    n: int = RESAMPLES,
    unit: str = "samples",
) -> Diff:
    """Score of a minus b and its 95 % percentile interval. a[i] and b[i] are the test predictions
    of the two configurations on the same seed: the difference is the mean over seeds, every seed
    scored on the same resample of the same samples. ValueError when they were not tested on the
    same samples (`unit` names them in the message)."""
    if len(a) != len(b) or not a:
        raise ValueError("need the same number (>= 1) of runs on each side")
    runs = _aligned(list(a) + list(b), unit)
    m = len(runs[0])
    d = np.concatenate(
        [
            np.mean(
                [score(x, w) - score(y, w) for x, y in zip(runs[: len(a)], runs[len(a) :], strict=True)], 0
            )
            for w in draws(m, n)
        ]
    )
    lo, hi = np.nanpercentile(d[1:], [2.5, 97.5])
    return Diff(float(d[0]), float(lo), float(hi), seeds=tuple(seeds), samples=m, p=boot_p(d[1:]))


def boot_p(d: np.ndarray) -> float:
    """Two-sided bootstrap p of "no difference" from the resampled differences `d`:
    2 min(P(d <= 0), P(d >= 0)), capped at 1 (the percentile interval's dual: below 0.05
    exactly when the 95 % interval excludes 0, ties aside). NaN resamples are left out."""
    d = d[~np.isnan(d)]
    if not len(d):
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))


def interval(preds: list[pd.DataFrame], score: Scorer, n: int = RESAMPLES) -> tuple[float, float, float]:
    """(score, low, high): the mean over the runs of several seeds and its 95 % percentile interval
    from resampling the test samples."""
    runs = _aligned(preds, "samples")
    f = np.concatenate([np.mean([score(x, w) for x in runs], axis=0) for w in draws(len(runs[0]), n)])
    lo, hi = np.nanpercentile(f[1:], [2.5, 97.5])
    return float(f[0]), float(lo), float(hi)
