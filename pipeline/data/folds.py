"""k-fold cross-validation assignment, grouped by patient and stratified by label.

Pass only the train+val samples: the test split stays held out and is never assigned a fold.
Fold f is the validation part of round f; the other k-1 folds are its training part
(`fold_indices`). All images of one group (patient) land in the same fold, so no patient is
on both sides of a round. The assignment is a pure function of (labels, groups, k, seed,
kind): the same inputs give the same folds, in any process.

- kind="multiclass": labels [N] class ids; scikit-learn's StratifiedGroupKFold (shuffled,
  seeded), which balances class proportions over folds while keeping groups whole.
- kind="multilabel": labels [N, K] in {0, 1}; iterative stratification (Sechidis et al.,
  2011) from the `iterative-stratification` package, run on groups: a group's label vector
  is the OR of its images' vectors (a patient is positive for a finding if any image is).
  Folds then hold similar numbers of patients, not exactly similar numbers of images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import StratifiedGroupKFold

Kind = Literal["multiclass", "multilabel"]


def assign_folds(
    labels: np.ndarray | Sequence, groups: np.ndarray | Sequence, k: int, seed: int, kind: Kind
) -> np.ndarray:
    """Fold index in [0, k) per sample, [N] int64. Raises ValueError (one line) on bad input,
    including k larger than the number of groups."""
    y, g = np.asarray(labels), np.asarray(groups)
    if kind not in ("multiclass", "multilabel"):
        raise ValueError(f"kind must be 'multiclass' or 'multilabel', got {kind!r}")
    if g.ndim != 1 or len(g) != len(y) or len(y) == 0:
        raise ValueError(f"need one group id per sample: {len(y)} samples, groups of shape {g.shape}")
    # Sorted unique ids, so the result does not depend on the order groups first appear in.
    uniq, inverse = np.unique(g, return_inverse=True)
    if not 2 <= k <= len(uniq):
        raise ValueError(f"k-fold needs 2 <= k <= number of groups, got k={k} with {len(uniq)} groups")
    if kind == "multiclass":
        return _multiclass(y, inverse, k, seed)
    return _multilabel(y, inverse, len(uniq), k, seed)


def _multiclass(y: np.ndarray, inverse: np.ndarray, k: int, seed: int) -> np.ndarray:
    if y.ndim != 1:
        raise ValueError(f"multiclass labels must be [N] class ids, got shape {y.shape}")
    folds = np.full(len(y), -1, dtype=np.int64)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, held) in enumerate(cv.split(np.zeros(len(y)), y, groups=inverse)):
        folds[held] = f
    return folds


def _multilabel(y: np.ndarray, inverse: np.ndarray, n_groups: int, k: int, seed: int) -> np.ndarray:
    if y.ndim != 2 or y.shape[1] < 2 or not np.isin(y, (0, 1)).all():
        raise ValueError(f"multilabel labels must be [N, K>=2] in {{0, 1}}, got shape {y.shape}")
    # OR over each group's images: a patient counts as positive for a label once.
    group_y = np.zeros((n_groups, y.shape[1]), dtype=np.int64)
    np.maximum.at(group_y, inverse, y.astype(np.int64))
    group_fold = np.full(n_groups, -1, dtype=np.int64)
    cv = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, held) in enumerate(cv.split(np.zeros(n_groups), group_y)):
        group_fold[held] = f
    return group_fold[inverse]


def fold_indices(folds: np.ndarray, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of round `fold`: validation is that fold, train the rest."""
    folds = np.asarray(folds)
    if fold not in set(folds.tolist()):
        raise ValueError(f"fold {fold} is not in the assignment (folds {sorted(set(folds.tolist()))})")
    return np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
