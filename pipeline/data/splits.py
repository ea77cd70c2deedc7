"""Train and dev as the experiment's `split` section asks: the dataset's own, one round of k-fold
cross-validation over train+dev, or train+dev together (the refit). Test is never touched.

Runs after the reader (MedPix or ChestX-ray14 format) and before label maps, so a fold's label
maps and class weights come from that fold's training part only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from core.errors import ConfigError
from core.schema import DatasetConfig, SplitConfig
from pipeline.data.medpix import Sample


def _labels(samples: list[Sample], kind: str, stratify: bool) -> np.ndarray:
    """What folds are stratified by: the 0/1 label vectors (multi-label), or every task's label
    joined into one class (multi-class, so each task's balance is kept); zeros when not asked."""
    if kind == "multilabel":
        y = np.array([np.concatenate([np.asarray(v) for v in s.labels.values()]) for s in samples])
        return y if stratify else np.zeros(len(samples), dtype=np.int64)
    if not stratify:
        return np.zeros(len(samples), dtype=np.int64)
    return np.array(["|".join(str(v) for v in s.labels.values()) for s in samples])


def apply_split(
    split: SplitConfig, dataset: DatasetConfig, splits: Mapping[str, list[Sample]], seed: int
) -> dict[str, list[Sample]]:
    """{train, dev, test} samples for this run. Folds are assigned over train+dev in a fixed
    order (train then dev, as read), grouped by patient unless `split.group` is null."""
    out = dict(splits)
    if split.refit:
        out["train"] = [*splits["train"], *splits["dev"]]
        return out
    if not split.folds:
        return out
    from pipeline.data.folds import assign_folds, fold_indices  # scikit-learn: only folds need it

    pool = [*splits["train"], *splits["dev"]]
    groups = [s.case_id for s in pool] if split.group is not None else [str(i) for i in range(len(pool))]
    # unstratified multi-label folds go through the grouped multi-class splitter with one class
    kind = dataset.kind if split.stratify else "multiclass"
    try:
        folds = assign_folds(_labels(pool, dataset.kind, split.stratify), groups, split.folds, seed, kind)
    except ValueError as e:
        raise ConfigError(f"split.folds: dataset {dataset.name!r}: {e}") from None
    train, dev = fold_indices(folds, split.fold)
    out["train"], out["dev"] = [pool[i] for i in train], [pool[i] for i in dev]
    return out
