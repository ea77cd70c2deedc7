"""Whole BraTS volumes for 3-D models: one tensor [C, X, Y, Z] per patient (issue 17).

The DSMIL path (pipeline.data.brats) turns a patient into a bag of axial slices; a 3-D model
(models/volume3d.py) reads the same patient as one volume instead. Both come from the same
`read_brats` records and the same `pipeline.data.mil.samples` split, so a 3-D model and DSMIL
see exactly the same patients in test and in every fold: only the decoding differs.

Decoding (`load_volume`), per subject:
  1. every modality is normalised over the whole volume exactly as for the slices
     (`brats.normalise`: z-score over brain voxels, clipped to ±3, mapped to 1..255;
     background stays 0), channels in `bags.modalities` order;
  2. cropped to the brain's bounding box: the voxels nonzero in any modality (BraTS is
     skull-stripped, background exactly 0), so the model's input is brain, not empty air;
  3. fitted to the configured `shape` (X, Y, Z, nibabel's axis order; Z is axial):
     - ``pad``: zero-padded around the box, centred; a box larger than `shape` on some side is
       first shrunk (one factor for all axes: anatomy keeps its proportions) to fit;
     - ``resize``: resampled to exactly `shape` (trilinear, anti-aliased when shrinking,
       MONAI's `Resize`; proportions change);
  4. rounded to uint8 (0..255): a 128³ four-modality volume is 8 MiB, not 32.
Result: uint8 [len(modalities), *shape]. `VolumeSet` caches each volume on disk like the bags
(pipeline.data.bags.CachedBags, keyed by the files' bytes and every parameter above).

Training augmentation (`train.augment: flip`): `random_flips` mirrors each volume of a training
batch along each spatial axis independently with probability 1/2 (as MONAI's BraTS recipes
do); evaluation batches are never flipped (`DataBundle.loader(plain=True)`, dev and test).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from core.errors import ConfigError, DataError
from core.schema import DatasetConfig
from pipeline.data.bags import BagRecord, CachedBags

FITS = ("pad", "resize")
_VERSION = "volume-v1"  # bump when load_volume's output changes: cached volumes are then stale


def _check_shape(shape: Sequence[int], fit: str) -> tuple[int, int, int]:
    out = tuple(int(s) for s in shape)
    if len(out) != 3 or min(out) < 1:
        raise ConfigError(f"volume.shape: expected three sides >= 1 (X, Y, Z), got {list(shape)}")
    if fit not in FITS:
        raise ConfigError(f"volume.fit: expected one of {', '.join(FITS)}, got {fit!r}")
    return out  # type: ignore[return-value]


def brain_box(volumes: np.ndarray) -> tuple[slice, slice, slice]:
    """The bounding box of the voxels nonzero in any channel of [C, X, Y, Z], as slices."""
    brain = np.any(volumes != 0, axis=0)
    box = []
    for axis in range(3):
        hit = np.flatnonzero(np.any(brain, axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)  # type: ignore[return-value]


def _resample(x: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """float [C, X, Y, Z] -> float [C, *size], trilinear; Gaussian anti-aliasing on shrunk axes."""
    if tuple(x.shape[1:]) == size:
        return x
    from monai.transforms import Resize  # MONAI's transforms are a heavy import: only here

    out = Resize(spatial_size=size, mode="trilinear", anti_aliasing=True)(torch.from_numpy(x))
    return np.asarray(torch.as_tensor(out), dtype=np.float32)


def fit_volume(x: np.ndarray, shape: Sequence[int], fit: str) -> np.ndarray:
    """float [C, X, Y, Z] -> float [C, *shape] (module docstring, step 3)."""
    shape = _check_shape(shape, fit)
    if fit == "resize":
        return _resample(x, shape)
    sides = np.array(x.shape[1:])
    if (sides > shape).any():  # shrink by one factor so the largest relative side fits exactly
        scale = float(np.min(np.array(shape) / sides))
        x = _resample(
            x, tuple(int(min(t, max(1, round(s * scale)))) for s, t in zip(sides, shape, strict=True))
        )
    out = np.zeros((x.shape[0], *shape), dtype=np.float32)
    at = [(t - s) // 2 for s, t in zip(x.shape[1:], shape, strict=True)]
    out[:, at[0] : at[0] + x.shape[1], at[1] : at[1] + x.shape[2], at[2] : at[2] + x.shape[3]] = x
    return out


def load_volume(
    record: BagRecord, modalities: Sequence[str], shape: Sequence[int], fit: str = "pad"
) -> np.ndarray:
    """uint8 [len(modalities), *shape] for one subject (module docstring, steps 1-4)."""
    from pipeline.data.brats import _check_modalities, _read_volumes, normalise

    mods = _check_modalities(modalities)
    shape = _check_shape(shape, fit)
    if len(mods) != len(record.instances):
        raise ConfigError(f"{record.where}: {len(mods)} modalities for {len(record.instances)} volumes")
    raw = np.stack(_read_volumes(record))
    if not raw.any():
        raise DataError(f"{record.where}: every voxel is 0 in {', '.join(mods)} (expected a brain)")
    box = brain_box(raw)
    norm = np.stack([normalise(v, m)[box] for v, m in zip(raw, mods, strict=True)])
    return np.clip(np.rint(fit_volume(norm, shape, fit)), 0, 255).astype(np.uint8)


class VolumeSet(CachedBags):
    """The decoded volumes of `read_brats` records (`.bags`, in records order), each cached on
    disk keyed by its files' bytes and the decoding parameters; `.save()` writes the cache."""

    def __init__(
        self, records: Sequence[BagRecord], modalities: Sequence[str], shape: Sequence[int], fit: str
    ) -> None:
        from pipeline.data.brats import _check_modalities

        mods, shape = _check_modalities(modalities), _check_shape(shape, fit)
        params = f"{_VERSION}:{','.join(mods)}:{'x'.join(map(str, shape))}:{fit}"
        super().__init__(records, params, lambda r: load_volume(r, mods, shape, fit))


class VolumeArray:
    """The volumes of one split's bag samples, stacked: `.array` uint8 [N, C, X, Y, Z]."""

    def __init__(self, cfg: DatasetConfig, samples_: Sequence, shape: Sequence[int], fit: str) -> None:
        if cfg.format != "brats":
            raise ConfigError(
                f"dataset {cfg.name!r}: volume models read BraTS volumes (format: brats), got format {cfg.format}"
            )
        records = [s.record for s in samples_]
        self._set = VolumeSet(records, cfg.bags.modalities, shape, fit)
        c = len(cfg.bags.modalities)
        self.array = np.stack(self._set.bags) if records else np.zeros((0, c, *shape), dtype=np.uint8)

    def save(self) -> None:
        self._set.save()


def random_flips(volumes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, C, X, Y, Z] with each volume mirrored along each spatial axis with probability 1/2,
    independently (the training augmentation; draws from torch's global RNG by default, as the
    2-D flips of torchvision do)."""
    out = volumes.clone()
    for axis in (2, 3, 4):
        pick = torch.rand(len(out), generator=generator) < 0.5
        if pick.any():
            out[pick] = out[pick].flip(axis)
    return out
