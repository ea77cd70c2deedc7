"""Metrics for multi-label classification (issue 12): per-label AUC, macro F1 at 0.5 and at
per-label thresholds tuned on validation, precision/recall, and the most frequent errors.

Inputs: labels y in {0, 1} [N, K], probabilities p in [0, 1] [N, K] (sigmoid outputs), and the
K label names. A label is predicted positive when p >= threshold. Metric names are flat and
stable, so they can be logged as they are::

    auc/<label>  auc_macro  f1_macro@0.5  f1_macro@tuned
    f1/<label>  precision/<label>  recall/<label>  threshold/<label>   (at the tuned thresholds)

Thresholds are tuned on validation only (`tune_thresholds`) and then applied to any split
(`multilabel_metrics` takes them as an argument and never tunes), so test numbers stay honest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

# Fixed grid, not the observed probabilities: thresholds then never sit exactly on one
# validation image's score, and runs are comparable threshold for threshold.
DEFAULT_CANDIDATES = np.round(np.linspace(0.01, 0.99, 99), 2)


def _check(y: np.ndarray, p: np.ndarray, names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} must have one shape [N, K]")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError("probabilities must be finite and in [0, 1] (apply the sigmoid first)")
    if names is not None and (len(names) != y.shape[1] or len(set(names)) != len(names)):
        raise ValueError(f"need {y.shape[1]} unique label names, got {list(names)}")
    return y.astype(np.int64), p


def _binarize(p: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    return (p >= np.asarray(thresholds, dtype=np.float64)).astype(np.int64)


def per_label_auc(y: np.ndarray, p: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """`auc/<label>` (ROC AUC) and `auc_macro`, their unweighted mean.

    A label with only one class present in y has no AUC: it is reported as NaN and left out of
    the macro, which is NaN only when no label has both classes.
    """
    y, p = _check(y, p, names)
    out: dict[str, float] = {}
    for k, name in enumerate(names):
        both = 0 < y[:, k].sum() < len(y)
        out[f"auc/{name}"] = float(roc_auc_score(y[:, k], p[:, k])) if both else float("nan")
    valid = [v for v in out.values() if not np.isnan(v)]
    out["auc_macro"] = float(np.mean(valid)) if valid else float("nan")
    return out


def tune_thresholds(
    y_val: np.ndarray, p_val: np.ndarray, candidates: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Per-label thresholds [K] that maximise that label's F1 on the validation split.

    Candidates default to 0.01, 0.02, ..., 0.99. Ties (equal F1, compared after rounding to
    1e-12) go to the candidate closest to 0.5, then to the larger one: tuning moves a threshold
    away from the default only when that strictly helps, and a label without positives on
    validation (F1 = 0 everywhere) keeps 0.5. Call it on validation only, never on test.
    """
    y, p = _check(y_val, p_val)
    cand = np.asarray(DEFAULT_CANDIDATES if candidates is None else candidates, dtype=np.float64)
    if cand.ndim != 1 or cand.size == 0:
        raise ValueError("candidates must be a non-empty 1-d list of thresholds")
    # Lexicographic order: F1 desc, distance to 0.5 asc, threshold desc; the first wins.
    dist = np.abs(cand - 0.5)
    out = np.empty(y.shape[1])
    for k in range(y.shape[1]):
        pred = p[:, k, None] >= cand[None, :]  # [N, C]
        pos = y[:, k, None] == 1
        tp = (pred & pos).sum(0)
        fp = (pred & ~pos).sum(0)
        fn = (~pred & pos).sum(0)
        denom = 2 * tp + fp + fn
        f1 = np.divide(2 * tp, denom, out=np.zeros(len(cand)), where=denom > 0)
        best = np.lexsort((-cand, dist, -np.round(f1, 12)))[0]
        out[k] = cand[best]
    return out


def confused_pairs(
    y: np.ndarray, p: np.ndarray, thresholds: np.ndarray | float, names: Sequence[str], top_n: int = 10
) -> list[tuple[str, str, int]]:
    """The most frequent (false-positive label, false-negative label) pairs in the same image.

    Each image adds 1 to every pair (a, b) with a predicted but absent and b present but missed:
    "the model saw a where the finding was b". Sorted by count, then by label order; pairs with
    count 0 are dropped. Returns [(fp_label, fn_label, count), ...], at most top_n long.
    """
    y, p = _check(y, p, names)
    pred = _binarize(p, thresholds)
    fp, fn = (pred == 1) & (y == 0), (pred == 0) & (y == 1)
    # [K, K] counts in one product: images where a is a false positive and b a false negative
    counts = fp.T.astype(np.int64) @ fn.astype(np.int64)
    pairs = [(int(c), a, b) for (a, b), c in np.ndenumerate(counts) if c > 0]
    ranked = sorted(pairs, key=lambda t: (-t[0], t[1], t[2]))[:top_n]
    return [(names[a], names[b], c) for c, a, b in ranked]


def multilabel_metrics(
    y: np.ndarray, p: np.ndarray, names: Sequence[str], thresholds: np.ndarray
) -> dict[str, float]:
    """Every metric of one split as a flat dict (names in the module docstring).

    `thresholds` [K] are applied, not tuned: pass `tune_thresholds(y_val, p_val)` for every
    split. F1, precision and recall use sklearn with zero_division=0 (a label with no
    positives and no positive predictions counts as F1 = 0 in the macro, as in sklearn).
    """
    y, p = _check(y, p, names)
    thr = np.asarray(thresholds, dtype=np.float64)
    if thr.shape != (y.shape[1],):
        raise ValueError(f"need {y.shape[1]} thresholds, got shape {thr.shape}")
    out = per_label_auc(y, p, names)
    out["f1_macro@0.5"] = float(f1_score(y, _binarize(p, 0.5), average="macro", zero_division=0))
    tuned = _binarize(p, thr)
    prec, rec, f1, _ = precision_recall_fscore_support(y, tuned, average=None, zero_division=0)
    out["f1_macro@tuned"] = float(np.mean(f1))
    for k, name in enumerate(names):
        out[f"f1/{name}"] = float(f1[k])
        out[f"precision/{name}"] = float(prec[k])
        out[f"recall/{name}"] = float(rec[k])
        out[f"threshold/{name}"] = float(thr[k])
    return out


def evaluate_val_test(
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    names: Sequence[str],
    candidates: Sequence[float] | np.ndarray | None = None,
    top_n: int = 10,
) -> dict[str, object]:
    """Tune thresholds on `val` = (y, p), apply them to both splits. Returns
    {"val": metrics, "test": metrics, "test_confused_pairs": [...]}; test never sets a threshold."""
    thr = tune_thresholds(*val, candidates=candidates)
    return {
        "val": multilabel_metrics(*val, names, thr),
        "test": multilabel_metrics(*test, names, thr),
        "test_confused_pairs": confused_pairs(*test, thr, names, top_n),
    }
