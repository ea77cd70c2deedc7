"""Splits and cross-validation folds of chest X-ray data keep every label's image-level prevalence
and the fold sizes: on the real NIH ChestX-ray14 table (label table only, no images) and on the
synthetic generator's table. Folds are assigned as the data stage does (`apply_split`): over
train+val, grouped by patient."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.chestxray import LABELS, XrayRecord, label_matrix, prevalence, read_chestxray, read_table
from pipeline.data.folds import assign_folds
from pipeline.data.synth.chestxray import generate_chestxray

REPO = Path(__file__).resolve().parents[1]
SHARED_NIH = REPO.parent / "shared" / "datasets" / "nih-chestxray14-labels"
SIZE_SPREAD = 0.05  # largest fold at most 5 % larger than the smallest, in images


def deviation(records: list[XrayRecord], reference: np.ndarray) -> dict[str, float]:
    """Per label, |prevalence - reference| in percentage points."""
    return dict(zip(LABELS, np.abs(prevalence(records) - reference) * 100, strict=True))


def check_folds(splits: dict[str, list[XrayRecord]], reference: np.ndarray, k: int, points: float) -> None:
    """k folds of train+val, seed 0: each patient in one fold, every label within `points` of
    `reference` in every fold, fold sizes within SIZE_SPREAD of each other."""
    pool = [*splits["train"], *splits["val"]]
    folds = assign_folds(label_matrix(pool), [r.patient_id for r in pool], k, seed=0, kind="multilabel")
    fold_of: dict[str, set[int]] = {}
    for r, f in zip(pool, folds.tolist(), strict=True):
        fold_of.setdefault(r.patient_id, set()).add(f)
    assert all(len(f) == 1 for f in fold_of.values()), "a patient is in two folds"
    sizes = np.bincount(folds, minlength=k)
    assert sizes.max() / sizes.min() - 1 <= SIZE_SPREAD, sizes
    for f in range(k):
        off = deviation([r for r, g in zip(pool, folds, strict=True) if g == f], reference)
        assert max(off.values()) <= points, (f, {n: round(v, 2) for n, v in off.items() if v > points})


@pytest.fixture(scope="module")
def nih() -> tuple[np.ndarray, dict[str, list[XrayRecord]]]:
    """(the whole real table's prevalence, its splits as chestxray.yaml forms them: subset 0.2, no
    list files so test is the stratified fallback, val 10 %), or a skip when the table is absent."""
    table = SHARED_NIH / "Data_Entry_2017_v2020.csv.gz"
    if not table.is_file():
        pytest.skip(f"../shared/datasets/nih-chestxray14-labels not present: {table} is missing")
    whole = prevalence(read_table(table, SHARED_NIH / "images"))
    return whole, read_chestxray(SHARED_NIH, subset=0.2, check_images=False)


@pytest.mark.shared_data
@pytest.mark.slow  # ~10 s of CPU: the stratified subset and splits at the full 112k-row scale
def test_real_splits_keep_every_label_within_one_point(nih):
    # Measured (thresholds 1-64): subset 0.20, train 0.28, val 0.22, test 0.36 points at most.
    # With thresholds (1, 3, 10) the test split was 1.07 points off (Pneumothorax).
    whole, splits = nih
    for name, records in {**splits, "subset": [r for v in splits.values() for r in v]}.items():
        off = deviation(records, whole)
        assert max(off.values()) <= 1.0, (name, {n: round(v, 2) for n, v in off.items() if v > 1})


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("k", [5, 3])
def test_real_folds_keep_every_label_within_one_point_and_sizes_within_5_percent(nih, k):
    # Measured, seeds 0-2: within 0.27 (k=5) / 0.25 (k=3) points of the whole table (0.025 /
    # 0.013 of train+val), sizes 3,556-3,557 / 5,927-5,928. Iterative stratification on "the
    # patient has the label" (the method before): up to 1.70 points, 3,228-3,940 images (k=5).
    whole, splits = nih
    check_folds(splits, whole, k, points=1.0)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[np.ndarray, dict[str, list[XrayRecord]]]:
    """(prevalence, splits) of the generator's table for 1,000 patients (2,223 images), read
    without its list files so that test is the stratified fallback too."""
    out = tmp_path_factory.mktemp("balanced-cxr")
    generate_chestxray(out / "gen", 1000, image_size=8, seed=0)
    (out / "table").mkdir()
    shutil.copy(out / "gen" / "Data_Entry_2017.csv", out / "table")
    whole = prevalence(read_table(out / "table" / "Data_Entry_2017.csv", out / "table" / "images"))
    return whole, read_chestxray(out / "table", check_images=False)


@pytest.mark.parametrize("k", [5, 3])
def test_synthetic_splits_and_folds_keep_the_balance(synth, k):
    # val holds ~177 images and a fold ~355, so one image moves a prevalence by 0.3-0.6 points:
    # hence 1.5 points here. Measured (generator seeds 0-2): splits <= 0.95, folds <= 0.30 points
    # and <= 0.3 % in size; the method before gave folds 1.6-3.9 points and 4.8-18 % apart.
    whole, splits = synth
    for name, records in splits.items():
        off = deviation(records, whole)
        assert max(off.values()) <= 1.5, (name, {n: round(v, 2) for n, v in off.items() if v > 1.5})
    check_folds(splits, whole, k, points=1.5)
