"""Grouped, stratified k-fold assignment: groups stay whole, every sample gets one fold, the
result is a function of the seed, and label proportions per fold follow the whole set."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.folds import assign_folds, fold_indices

K_FOLDS, N_GROUPS, N_LABELS = 5, 400, 14


def patients(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """400 patients with 1-5 images each; multi-label findings shared within a patient
    (prevalence 3-30%), and one multiclass label per patient (60/25/10/5%)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, N_GROUPS)
    groups = np.repeat([f"p{i:04d}" for i in range(N_GROUPS)], sizes)
    per_patient = rng.random((N_GROUPS, N_LABELS)) < np.linspace(0.03, 0.3, N_LABELS)
    multilabel = (np.repeat(per_patient, sizes, axis=0) & (rng.random((len(groups), N_LABELS)) < 0.8)).astype(
        int
    )
    multiclass = np.repeat(rng.choice(4, N_GROUPS, p=[0.6, 0.25, 0.1, 0.05]), sizes)
    return groups, multilabel, multiclass


def labels_for(kind: str) -> tuple[np.ndarray, np.ndarray]:
    groups, ml, mc = patients()
    return (ml if kind == "multilabel" else mc), groups


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_every_sample_one_fold_and_no_group_split(kind):
    y, groups = labels_for(kind)
    folds = assign_folds(y, groups, K_FOLDS, seed=0, kind=kind)
    assert folds.shape == (len(y),) and folds.dtype == np.int64
    assert set(folds.tolist()) == set(range(K_FOLDS))  # every fold used, none outside [0, k)
    for g in np.unique(groups):
        assert len(set(folds[groups == g].tolist())) == 1, f"group {g} is in two folds"
    for f in range(K_FOLDS):
        train, val = fold_indices(folds, f)
        assert len(train) + len(val) == len(y) and not set(train) & set(val)
        assert not set(groups[train]) & set(groups[val])


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_deterministic_per_seed_and_different_across_seeds(kind):
    y, groups = labels_for(kind)
    a = assign_folds(y, groups, K_FOLDS, seed=3, kind=kind)
    assert np.array_equal(a, assign_folds(y, groups, K_FOLDS, seed=3, kind=kind))
    assert not np.array_equal(a, assign_folds(y, groups, K_FOLDS, seed=4, kind=kind))


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_row_order_does_not_change_a_samples_fold(kind):
    y, groups = labels_for(kind)
    perm = np.random.default_rng(1).permutation(len(y))
    folds = assign_folds(y, groups, K_FOLDS, seed=0, kind=kind)
    assert np.array_equal(assign_folds(y[perm], groups[perm], K_FOLDS, seed=0, kind=kind), folds[perm])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multilabel_image_prevalence_and_size_per_fold_close_to_overall(seed):
    # What the assignment balances: per fold, each label's image-level prevalence (within 0.02
    # absolute) and the number of images (within 5 % of each other), groups kept whole. Measured
    # on this data, seeds 0-4: <= 0.008 and <= 2.4 %. Iterative stratification on patient label
    # vectors (the method before) gave 0.035-0.076 and 5.8-9.3 %, random patient splits
    # 0.078-0.124 and 6-18 %, so both bounds fail without it. Patient-level prevalence (a patient
    # is positive if any image is) stays within 0.05 (measured <= 0.031; random: >= 0.085).
    y, groups = labels_for("multilabel")
    folds = assign_folds(y, groups, K_FOLDS, seed=seed, kind="multilabel")
    sizes = np.bincount(folds, minlength=K_FOLDS)
    assert sizes.max() / sizes.min() <= 1.05, sizes
    ids, first = np.unique(groups, return_index=True)
    per_patient = np.stack([y[groups == g].max(0) for g in ids])
    patient_fold = folds[first]
    for f in range(K_FOLDS):
        dev = np.abs(y[folds == f].mean(0) - y.mean(0))
        assert dev.max() <= 0.02, f"fold {f}: image prevalence off by {dev.max():.3f}"
        dev = np.abs(per_patient[patient_fold == f].mean(0) - per_patient.mean(0))
        assert dev.max() <= 0.05, f"fold {f}: patient prevalence off by {dev.max():.3f}"


def test_multiclass_class_proportions_per_fold_close_to_overall():
    # Tolerance: 0.02 absolute per class and fold (random patient splits: ~0.06 here).
    y, groups = labels_for("multiclass")
    folds = assign_folds(y, groups, K_FOLDS, seed=0, kind="multiclass")
    overall = np.bincount(y, minlength=4) / len(y)
    for f in range(K_FOLDS):
        share = np.bincount(y[folds == f], minlength=4) / np.sum(folds == f)
        assert np.abs(share - overall).max() <= 0.02


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_k_larger_than_groups_is_one_line_error(kind):
    # 6 samples, 3 patients; each class has >= 3 samples (StratifiedGroupKFold's own rule)
    y = np.array([0, 1, 0, 1, 0, 1]) if kind == "multiclass" else np.eye(2, dtype=int)[[0, 1, 0, 1, 0, 1]]
    groups = np.array(["a", "a", "b", "b", "c", "c"])
    with pytest.raises(ValueError, match=r"k=4 with 3 groups") as e:
        assign_folds(y, groups, 4, seed=0, kind=kind)
    assert "\n" not in str(e.value)
    assert set(assign_folds(y, groups, 3, seed=0, kind=kind).tolist()) == {0, 1, 2}  # k = groups works


@pytest.mark.parametrize(
    ("y", "groups", "k", "kind", "match"),
    [
        (np.zeros(4), np.arange(4), 1, "multiclass", "2 <= k"),
        (np.zeros(4), np.arange(4), 2, "regression", "kind"),
        (np.zeros(4), np.arange(3), 2, "multiclass", "one group id per sample"),
        (np.zeros((4, 2)), np.arange(4), 2, "multiclass", r"\[N\] class ids"),
        (np.zeros(4), np.arange(4), 2, "multilabel", r"\[N, K>=2\]"),
        (np.full((4, 2), 2), np.arange(4), 2, "multilabel", r"\[N, K>=2\]"),
    ],
)
def test_bad_inputs_are_rejected(y, groups, k, kind, match):
    with pytest.raises(ValueError, match=match):
        assign_folds(y, groups, k, seed=0, kind=kind)


def test_fold_indices_rejects_unknown_fold():
    with pytest.raises(ValueError, match="fold 7"):
        fold_indices(np.array([0, 1, 0, 1]), 7)
