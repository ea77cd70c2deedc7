"""Macro AUC from multi-label test predictions, and the paired bootstrap of a macro-AUC difference.

Predictions (predictions/test.csv of a multilabel run): `index`, then `<task>/<label>/label`
(0/1) and `<task>/<label>/p` per label. Macro AUC is the mean over the labels with both classes
present, as the pipeline scores it; on a resample, over the labels with both classes present in
that resample. Resamples draw test images with replacement from a fixed seed (deterministic),
the same images for both runs: the interval is the uncertainty from the test set's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

RESAMPLES = 1000
_CHUNK = 100  # resamples scored at once: bounds memory on a large test set


def labels_of(pred: pd.DataFrame, task: str) -> list[str]:
    """The task's labels in the model's head order (the column order of the file)."""
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


def macro_auc(pred: pd.DataFrame, tasks: list[str], weights: np.ndarray) -> np.ndarray:
    """Mean over tasks of the macro AUC over labels with both classes (per resample row)."""
    per_task = []
    for t in tasks:
        aucs = [
            weighted_auc(pred[f"{t}/{c}/label"].to_numpy(), pred[f"{t}/{c}/p"].to_numpy(float), weights)
            for c in labels_of(pred, t)
        ]
        per_task.append(_nanmean(np.array(aucs)))
    return _nanmean(np.array(per_task))


def _nanmean(a: np.ndarray) -> np.ndarray:
    """Column means over the rows that are not NaN (NaN where none is): np.nanmean, no warning."""
    ok = ~np.isnan(a)
    total = np.where(ok, a, 0.0).sum(0)
    n = ok.sum(0)
    return np.divide(total, n, out=np.full(a.shape[1:], np.nan), where=n > 0)


def _chunks(m: int, n: int, seed: int) -> Iterator[np.ndarray]:
    """Row 0: the full test set; then n resamples of its m images as counts, in chunks."""
    rng = np.random.default_rng(seed)
    yield np.ones((1, m))
    for start in range(0, n, _CHUNK):
        k = min(_CHUNK, n - start)
        yield np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(k)]).astype(float)


@dataclass
class AucDiff:
    """Test macro AUC of a minus b over paired seeds, and its 95 % bootstrap interval."""

    diff: float
    lo: float
    hi: float
    images: int
    seeds: tuple[int, ...]

    @property
    def verdict(self) -> str:
        if self.lo > 0:
            return "beyond noise (the interval lies above 0)"
        if self.hi < 0:
            return "beyond noise, lower (the interval lies below 0)"
        return "within noise (the interval contains 0)"


def paired_auc_bootstrap(
    a: list[pd.DataFrame], b: list[pd.DataFrame], tasks: list[str], seeds: tuple[int, ...], n: int = RESAMPLES
) -> AucDiff:
    """a[i] and b[i]: test predictions of the two configurations on the same seed, matched by
    image index; the difference is the mean over seeds, every seed scored on the same resample."""
    if len(a) != len(b) or not a:
        raise ValueError("need the same number (>= 1) of runs on each side")
    runs = [p.sort_values("index").reset_index(drop=True) for p in a + b]
    if any(not np.array_equal(runs[0]["index"].to_numpy(), r["index"].to_numpy()) for r in runs):
        raise ValueError("the runs were tested on different images")
    m = len(runs[0])
    diffs = []
    for w in _chunks(m, n, seed=0):
        d = [
            macro_auc(x, tasks, w) - macro_auc(y, tasks, w)
            for x, y in zip(runs[: len(a)], runs[len(a) :], strict=True)
        ]
        diffs.append(np.mean(d, axis=0))
    d = np.concatenate(diffs)
    lo, hi = np.nanpercentile(d[1:], [2.5, 97.5])
    return AucDiff(float(d[0]), float(lo), float(hi), m, seeds)
