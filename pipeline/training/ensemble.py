"""Ensembles of fold models (seed 002, issue 17): the members' predicted class probabilities on one
fold's dev and on test, combined. Never fitted on test: weights and the stacker see dev only.

- `mean`:          p = (1/M) sum_m p_m
- `auc_weighted`:  p = sum_m w_m p_m,  w_m = AUC_m / sum_j AUC_j, AUC_m the member's dev AUC on
                   this fold (one-vs-rest macro for more than two classes)
- `stacking`:      a logistic regression on the members' probabilities (the positive class's for a
                   binary task, all classes otherwise), fitted on dev. Its dev probabilities are
                   out-of-fold (stratified k-fold inside dev, k <= 3), so its dev figures are not
                   in-sample; its test probabilities come from the fit on all of dev.

    >>> dev = [np.array([[0.2, 0.8]]), np.array([[0.6, 0.4]])]  # two members, one patient
    >>> combine("mean", dev, dev, np.array([1]))[0].round(2).tolist()
    [[0.4, 0.6]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("mean", "auc_weighted", "stacking")


def auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Dev AUC of one member: binary on the second class, else one-vs-rest macro; NaN with one class."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(roc_auc_score(labels, probs, multi_class="ovr", labels=list(range(probs.shape[1]))))


def weights(method: str, dev: Sequence[np.ndarray], dev_labels: np.ndarray) -> np.ndarray:
    """The members' weights of `mean` and `auc_weighted` (they sum to 1)."""
    if method == "mean":
        return np.full(len(dev), 1.0 / len(dev))
    aucs = np.array([auc(dev_labels, p) for p in dev])
    if np.isnan(aucs).any() or aucs.sum() <= 0:  # no dev AUC to weigh by: the plain mean
        return np.full(len(dev), 1.0 / len(dev))
    return aucs / aucs.sum()


def _features(probs: Sequence[np.ndarray]) -> np.ndarray:
    return np.hstack([p[:, 1:] if p.shape[1] == 2 else p for p in probs])


def combine(
    method: str, dev: Sequence[np.ndarray], test: Sequence[np.ndarray], dev_labels: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The ensemble's (dev, test) class probabilities from the members' (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"ensemble method {method!r}: expected one of {', '.join(METHODS)}")
    if method != "stacking":
        w = weights(method, dev, dev_labels)
        return sum(wi * p for wi, p in zip(w, dev, strict=True)), sum(
            wi * p for wi, p in zip(w, test, strict=True)
        )
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x_dev, x_test = _features(dev), _features(test)
    k = dev[0].shape[1]
    classes, counts = np.unique(dev_labels, return_counts=True)
    if len(classes) < k or counts.min() < 2:  # a class missing from dev: no stacker can be fitted
        raise ValueError("stacking needs every class at least twice in the fold's dev predictions")
    model = LogisticRegression(max_iter=1000)
    folds = StratifiedKFold(n_splits=min(3, int(counts.min())), shuffle=True, random_state=seed)
    dev_p = cross_val_predict(model, x_dev, dev_labels, cv=folds, method="predict_proba")
    test_p = model.fit(x_dev, dev_labels).predict_proba(x_test)
    return dev_p, test_p
