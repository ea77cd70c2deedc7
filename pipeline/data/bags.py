"""Multiple-instance-learning bags: the record type, the generic CSV bag format, the on-disk bag
cache and the patient-level stratified test split shared by every bag format.

A bag is one patient (or case) with one label and several instances (PNG images, or MRI slices
for `pipeline.data.brats`). The generic format is one CSV, one row per instance::

    bag_id,label,instance_path
    case01,malignant,case01/0.png      instance_path is relative to the CSV's folder
    case01,malignant,case01/1.png

Decoded bags are uint8 arrays [N_instances, C, S, S] (N differs between bags). Each bag is cached
as one .npy under KDSWEEP_CACHE (default data/.cache), keyed by the bytes of its files plus the
decoding parameters, written only after every bag of the set decoded (`save()`).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError
from pipeline.data.images import cache_dir, decode

_VERSION = "bags-v1"  # bump when a decoder below (or in brats.py) changes its output
COLUMNS = ("bag_id", "label", "instance_path")


@dataclass(frozen=True)
class BagRecord:
    """One bag: `instances` in bag order (PNG paths, or BraTS modality volumes in configured
    order); `where` is the file:line or folder to name in errors."""

    bag_id: str
    label: str
    instances: tuple[Path, ...]
    where: str


def read_bag_csv(path: Path) -> list[BagRecord]:
    """The bags of a `bag_id,label,instance_path` CSV, sorted by bag_id; each bag's instances
    in file order. Every row is checked (columns, one label per bag, files exist) before return."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: bag CSV not found (expected a file with header {','.join(COLUMNS)})")
    instances: dict[str, list[Path]] = {}
    labels: dict[str, tuple[str, int]] = {}  # bag -> (label, line it was first given on)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            if not header:
                raise DataError(f"{path}:1: empty CSV (expected header {','.join(COLUMNS)})")
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{path}:1: missing column(s) {', '.join(missing)} (expected header {','.join(COLUMNS)})"
                )
            for row in reader:
                line = reader.line_num
                bag, label, rel = ((row.get(c) or "").strip() for c in COLUMNS)
                if not bag or not label or not rel:
                    raise DataError(f"{path}:{line}: empty bag_id, label or instance_path")
                first = labels.setdefault(bag, (label, line))
                if first[0] != label:
                    raise DataError(
                        f"{path}:{line}: bag {bag!r} has label {label!r} but {first[0]!r} on line "
                        f"{first[1]} (expected one label per bag)"
                    )
                file = path.parent / rel
                if not file.is_file():
                    raise DataError(
                        f"{path}:{line}: instance file {file} not found (expected a PNG relative to the CSV's folder)"
                    )
                instances.setdefault(bag, []).append(file)
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"{path}: malformed CSV ({e})") from None
    if not instances:
        raise DataError(f"{path}:2: the CSV has a header but no rows (expected one row per instance)")
    return [
        BagRecord(bag, labels[bag][0], tuple(instances[bag]), f"{path}:{labels[bag][1]}")
        for bag in sorted(instances)
    ]


def load_png_bag(record: BagRecord, image_size: int, channels: int) -> np.ndarray:
    """uint8 [N, channels, S, S]: each instance PNG letterboxed to S×S as in `images.decode`."""
    return np.stack([decode(p, image_size, channels) for p in record.instances])


def bag_key(record: BagRecord, params: str) -> str:
    """Cache key: the decoder version and parameters, then each instance file's bytes, in order."""
    h = hashlib.sha256(f"{_VERSION}:{params}".encode())
    for p in record.instances:
        try:
            h.update(hashlib.sha256(p.read_bytes()).digest())
        except OSError as e:
            raise DataError(f"{p}: cannot read ({type(e).__name__}: {e})") from None
    return h.hexdigest()[:24]


class CachedBags:
    """Decoded bags (`.bags`, in `records` order), each read from its cache file when present,
    else decoded by `load`; `save()` writes the new ones (call it after all decoded, as here)."""

    def __init__(self, records: Sequence[BagRecord], params: str, load: Callable[[BagRecord], np.ndarray]):
        self.records = list(records)
        self.files = [cache_dir() / f"bag-{bag_key(r, params)}.npy" for r in self.records]
        self.bags: list[np.ndarray] = []
        self._new: list[int] = []
        for i, (record, file) in enumerate(zip(self.records, self.files, strict=True)):
            if file.is_file():
                self.bags.append(np.load(file))
            else:
                self.bags.append(load(record))
                self._new.append(i)
        self.cached = not self._new  # every bag came from the cache

    def save(self) -> None:
        for i in self._new:
            file = self.files[i]
            if file.is_file():
                continue
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                np.save(f, self.bags[i])
            os.replace(tmp, file)  # atomic: parallel trials never read a half-written file
        self._new = []


class PngBagSet(CachedBags):
    """The decoded PNG bags of `read_bag_csv` records, cached."""

    def __init__(self, records: Sequence[BagRecord], image_size: int, channels: int) -> None:
        super().__init__(
            records, f"png:{image_size}:{channels}", lambda r: load_png_bag(r, image_size, channels)
        )


def stratified_holdout(
    records: Sequence[BagRecord], test_fraction: float, seed: int
) -> tuple[list[BagRecord], list[BagRecord]]:
    """(train_dev, test): a bag-level (patient-level) split, stratified by label, so a patient's
    instances never straddle it. round(test_fraction * n) bags go to test, each label's share
    within one bag of its overall share. Input order does not matter (bags are sorted by id
    first); same records + seed -> same split. Both parts are returned sorted by bag_id."""
    from sklearn.model_selection import train_test_split  # slow import; only this needs it

    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction {test_fraction} is not between 0 and 1 (exclusive)")
    ordered = sorted(records, key=lambda r: r.bag_id)
    dupes = sorted(b for b, n in Counter(r.bag_id for r in ordered).items() if n > 1)
    if dupes:
        raise DataError(f"bag id(s) {', '.join(dupes[:5])} appear twice (expected one record per bag)")
    try:
        train, test = train_test_split(
            ordered, test_size=test_fraction, stratify=[r.label for r in ordered], random_state=seed
        )
    except ValueError as e:  # e.g. a label with a single bag cannot be stratified
        raise DataError(f"cannot split {len(ordered)} bags stratified by label: {e}") from None
    return sorted(train, key=lambda r: r.bag_id), sorted(test, key=lambda r: r.bag_id)
