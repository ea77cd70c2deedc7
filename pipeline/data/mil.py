"""Multiple-instance datasets as the data stage's samples: one sample per bag (patient).

`samples(cfg)` reads a `format: brats` or `format: bags` dataset (pipeline.data.brats,
pipeline.data.bags) and splits it into train/dev/test by stratified, patient-level hold-outs
(neither format publishes splits): test first (`bags.test_fraction` of all bags), then dev
(`bags.dev_fraction` of the rest), both fixed by `bags.holdout_seed`, so cross-validation folds
(the experiment's `split`) and the held-out test are the same for every configuration.

`PaddedBags` decodes (or reads from the cache) every bag of a split and pads them to one
tensor: image uint8 [N_bags, N_max, C, S, S] and instance_mask bool [N_bags, N_max] (True =
a real instance). DSMIL encodes only the real instances, so padding costs memory, not compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.schema import DatasetConfig
from pipeline.data.bags import BagRecord, PngBagSet, read_bag_csv, stratified_holdout
from pipeline.data.medpix import Sample


@dataclass(frozen=True)
class BagSample(Sample):
    record: BagRecord


def _records(cfg: DatasetConfig) -> list[BagRecord]:
    root = Path(cfg.root)
    if cfg.format == "brats":
        from pipeline.data.brats import read_brats

        return read_brats(root, cfg.bags.modalities)
    return read_bag_csv(root / cfg.bags.csv)


def samples(cfg: DatasetConfig) -> tuple[dict[str, list[Sample]], dict[str, tuple[str, ...]]]:
    """(train/dev/test bag samples, label maps: the one task -> its sorted labels)."""
    (task,) = tuple(cfg.tasks)
    records = _records(cfg)
    if not records:
        raise DataError(f"{cfg.root}: no bags found (dataset {cfg.name!r}, format {cfg.format})")
    o = cfg.bags
    rest, test = stratified_holdout(records, o.test_fraction, o.holdout_seed)
    train, dev = stratified_holdout(rest, o.dev_fraction, o.holdout_seed)

    def to_samples(rs: list[BagRecord]) -> list[Sample]:
        return [BagSample(r.bag_id, r.instances[0], "", {task: r.label}, r.where, r) for r in rs]

    labels = tuple(sorted({r.label for r in records}))
    return {"train": to_samples(train), "dev": to_samples(dev), "test": to_samples(test)}, {task: labels}


class PaddedBags:
    """The bags of `samples` decoded and padded: `.array` [N, N_max, C, S, S], `.mask`."""

    def __init__(self, cfg: DatasetConfig, samples_: list[Sample], image_size: int) -> None:
        records = [s.record for s in samples_]  # type: ignore[attr-defined]
        if cfg.format == "brats":
            from pipeline.data.brats import BagSet

            o = cfg.bags
            self._set = BagSet(
                records, o.modalities, image_size, o.slice_step, o.max_slices, o.min_brain_fraction
            )
        else:
            self._set = PngBagSet(records, image_size, cfg.channels)
        bags = self._set.bags
        n = max((len(b) for b in bags), default=1)
        c = bags[0].shape[1] if bags else cfg.channels
        self.array = np.zeros((len(bags), n, c, image_size, image_size), dtype=np.uint8)
        self.mask = np.zeros((len(bags), n), dtype=bool)
        for i, b in enumerate(bags):
            self.array[i, : len(b)], self.mask[i, : len(b)] = b, True
        self.sizes = [len(b) for b in bags]

    def save(self) -> None:
        self._set.save()
