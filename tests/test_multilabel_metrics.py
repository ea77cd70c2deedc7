"""Multi-label metrics against scikit-learn on random data, the NaN rule for AUC, the threshold
tie-break, and that tuned thresholds come from validation only."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from tasks.multilabel_metrics import (
    DEFAULT_CANDIDATES,
    confused_pairs,
    evaluate_val_test,
    multilabel_metrics,
    per_label_auc,
    tune_thresholds,
)

K = 14
NAMES = [f"L{k:02d}" for k in range(K)]


def split(seed: int, n: int = 300, signal: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Random labels with per-label prevalence 5-40% and informative, noisy probabilities."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, K)) < np.linspace(0.05, 0.4, K)).astype(int)
    p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 1.5, (n, K)) - 1.0)))
    return y, p


def test_auc_matches_sklearn():
    y, p = split(0)
    m = per_label_auc(y, p, NAMES)
    for k, name in enumerate(NAMES):
        assert m[f"auc/{name}"] == pytest.approx(roc_auc_score(y[:, k], p[:, k]))
    assert m["auc_macro"] == pytest.approx(roc_auc_score(y, p, average="macro"))


def test_auc_nan_for_single_class_labels_and_excluded_from_macro():
    y, p = split(1)
    y[:, 3] = 0  # no positives
    y[:, 7] = 1  # no negatives
    m = per_label_auc(y, p, NAMES)
    assert math.isnan(m["auc/L03"]) and math.isnan(m["auc/L07"])
    keep = [k for k in range(K) if k not in (3, 7)]
    assert m["auc_macro"] == pytest.approx(roc_auc_score(y[:, keep], p[:, keep], average="macro"))
    assert math.isnan(per_label_auc(np.zeros((5, 2), int), np.full((5, 2), 0.5), ["a", "b"])["auc_macro"])


def test_f1_precision_recall_match_sklearn_at_applied_thresholds():
    y, p = split(2)
    thr = np.random.default_rng(3).uniform(0.2, 0.8, K)
    m = multilabel_metrics(y, p, NAMES, thr)
    pred = (p >= thr).astype(int)
    assert m["f1_macro@0.5"] == pytest.approx(f1_score(y, p >= 0.5, average="macro", zero_division=0))
    assert m["f1_macro@tuned"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert m["f1_macro@tuned"] != pytest.approx(m["f1_macro@0.5"])  # the thresholds are really applied
    for k, name in enumerate(NAMES):
        assert m[f"precision/{name}"] == pytest.approx(precision_score(y[:, k], pred[:, k], zero_division=0))
        assert m[f"recall/{name}"] == pytest.approx(recall_score(y[:, k], pred[:, k], zero_division=0))
        assert m[f"f1/{name}"] == pytest.approx(f1_score(y[:, k], pred[:, k], zero_division=0))
        assert m[f"threshold/{name}"] == thr[k]


def test_metric_names_are_stable():
    y, p = split(4)
    m = multilabel_metrics(y, p, NAMES, np.full(K, 0.5))
    per_label = {f"{kind}/{n}" for kind in ("auc", "f1", "precision", "recall", "threshold") for n in NAMES}
    assert set(m) == per_label | {"auc_macro", "f1_macro@0.5", "f1_macro@tuned"}
    assert all(isinstance(v, float) for v in m.values())


def test_tuned_thresholds_maximise_each_label_f1_on_val():
    y, p = split(5)
    thr = tune_thresholds(y, p)
    for k in range(K):
        scores = [f1_score(y[:, k], p[:, k] >= c, zero_division=0) for c in DEFAULT_CANDIDATES]
        assert thr[k] in DEFAULT_CANDIDATES
        assert f1_score(y[:, k], p[:, k] >= thr[k], zero_division=0) == pytest.approx(max(scores))
    # tuning helps on the split it was tuned on (these probabilities are miscalibrated low)
    assert f1_score(y, p >= thr, average="macro") > f1_score(y, p >= 0.5, average="macro")


def test_threshold_tie_break_closest_to_half_then_larger():
    y = np.array([[1, 1, 1, 0], [0, 0, 0, 0]])
    p = np.array([[0.8, 0.3, 0.7, 0.9], [0.2, 0.1, 0.3, 0.1]])
    # label 0: any t in (0.2, 0.8] is perfect -> 0.5; label 1: (0.1, 0.3] -> 0.3 (closest to 0.5);
    # label 3: no positives, F1 = 0 everywhere -> 0.5
    assert tune_thresholds(y, p).tolist() == pytest.approx([0.5, 0.3, 0.5, 0.5])
    # label 2 with candidates 0.4 and 0.6: both perfect, equally far from 0.5 -> the larger
    assert tune_thresholds(y[:, 2:3], p[:, 2:3], candidates=[0.4, 0.6]).tolist() == [0.6]


def test_thresholds_come_from_validation_only():
    val, test = split(6), split(7, signal=3.0)
    out = evaluate_val_test(val, test, NAMES)
    from_val = tune_thresholds(*val)
    test_tuned = tune_thresholds(*test)
    assert not np.allclose(from_val, test_tuned)  # otherwise the test below proves nothing
    for k, name in enumerate(NAMES):
        assert out["test"][f"threshold/{name}"] == out["val"][f"threshold/{name}"] == from_val[k]
    y_t, p_t = test
    assert out["test"]["f1_macro@tuned"] == pytest.approx(f1_score(y_t, p_t >= from_val, average="macro"))
    # tuning on test would score higher on test: the reported number is not that one
    assert out["test"]["f1_macro@tuned"] < f1_score(y_t, p_t >= test_tuned, average="macro")
    # changing the test probabilities cannot move the thresholds
    shifted = evaluate_val_test(val, (y_t, p_t**3), NAMES)
    assert [shifted["test"][f"threshold/{n}"] for n in NAMES] == from_val.tolist()


def test_confused_pairs_counts_fp_fn_pairs_per_image():
    names = ["a", "b", "c"]
    y = np.array([[0, 1, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    p = np.array([[0.9, 0.1, 0.1], [0.9, 0.2, 0.0], [0.0, 0.9, 0.1], [0.9, 0.9, 0.9]])
    # image 0: fp {a}, fn {b, c}; image 1: fp {a}, fn {b}; image 2: fp {b}, fn {c}; image 3: no fn
    assert confused_pairs(y, p, 0.5, names) == [("a", "b", 2), ("a", "c", 1), ("b", "c", 1)]
    assert confused_pairs(y, p, 0.5, names, top_n=1) == [("a", "b", 2)]


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        (np.zeros((4, 2)), np.zeros((4, 3)), "one shape"),
        (np.full((4, 2), 2), np.zeros((4, 2)), "0 or 1"),
        (np.zeros((4, 2)), np.full((4, 2), 1.5), r"\[0, 1\]"),
    ],
)
def test_bad_inputs_are_rejected(y, p, match):
    with pytest.raises(ValueError, match=match):
        tune_thresholds(y, p)


def test_bad_names_and_thresholds_are_rejected():
    y, p = split(8, n=20)
    with pytest.raises(ValueError, match="unique label names"):
        per_label_auc(y, p, NAMES[:-1])
    with pytest.raises(ValueError, match="thresholds"):
        multilabel_metrics(y, p, NAMES, np.full(K - 1, 0.5))
