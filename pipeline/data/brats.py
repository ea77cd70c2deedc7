"""Read BraTS 2019 (training set, as published) into MIL bags: one bag per subject, label = grade.

Layout (the synthetic copy of `pipeline.data.synth.brats` is the same)::

    <root>/HGG/<subject>/<subject>_{flair,t1,t1ce,t2,seg}.nii.gz   (.nii also accepted)
    <root>/LGG/<subject>/...
    <root>/name_mapping.csv   optional; Grade,...,BraTS_2019_subject_ID: cross-checks the grades

A bag's instances are its axial slices (the volume's last axis), each with one channel per
modality, in the configured order. BraTS has no published test split: use
`pipeline.data.bags.stratified_holdout`. Volumes are read with nibabel (imported on first use).

Decoding (`load_bag`), per subject:
  1. every modality is z-scored over its brain voxels (nonzero; BraTS is skull-stripped with
     background exactly 0): z = (v - mean) / sd, clipped to ±3, mapped to 1 + (z + 3) / 6 * 254
     (so 1..255); background stays 0. `seg` (labels 0, 1, 2, 4) is mapped to label * 63 instead.
  2. slices whose brain fraction (share of pixels nonzero in any modality) is below
     min_brain_fraction are dropped; then every slice_step-th remaining slice is kept (from the
     first); then, if more than max_slices remain, max_slices of them evenly spaced
     (indices round(linspace(0, n - 1, max_slices))).
  3. each slice vol[:, :, k] (rows = first axis) is letterboxed to S×S, antialiased bilinear
     (PIL, on the float values), then rounded to uint8.
Result: uint8 [N_slices, len(modalities), S, S]. `BagSet` caches each bag (see bags.py).
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import ConfigError, DataError, closest
from pipeline.data.bags import BagRecord, CachedBags

__all__ = ["BagRecord", "BagSet", "GRADES", "MODALITIES", "load_bag", "read_brats"]

GRADES = ("HGG", "LGG")
MODALITIES = ("flair", "t1", "t1ce", "t2", "seg")
MAPPING = "name_mapping.csv"
MAPPING_COLUMNS = ("Grade", "BraTS_2019_subject_ID")
SEG_SCALE = 63  # label 4 (enhancing tumour) -> 252


def _check_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    mods = tuple(modalities)
    if not mods:
        raise ConfigError("modalities: empty (expected some of " + ", ".join(MODALITIES) + ")")
    for m in mods:
        if m not in MODALITIES:
            raise ConfigError(f"modalities: unknown modality {m!r} ({closest(m, MODALITIES)})")
    if len(set(mods)) != len(mods):
        raise ConfigError(f"modalities: {', '.join(mods)} names a modality twice")
    return mods


def _read_mapping(path: Path) -> dict[str, tuple[str, int]]:
    """name_mapping.csv -> {BraTS_2019_subject_ID: (Grade, line)}."""
    out: dict[str, tuple[str, int]] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in MAPPING_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(
                    f"{path}:1: missing column(s) {', '.join(missing)} (expected BraTS 2019's "
                    f"Grade,BraTS_2017_subject_ID,BraTS_2018_subject_ID,TCGA_TCIA_subject_ID,BraTS_2019_subject_ID)"
                )
            for row in reader:
                subject, grade = (row["BraTS_2019_subject_ID"] or "").strip(), (row["Grade"] or "").strip()
                if grade not in GRADES:
                    raise DataError(f"{path}:{reader.line_num}: Grade {grade!r} (expected HGG or LGG)")
                out[subject] = (grade, reader.line_num)
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"{path}: malformed CSV ({e})") from None
    return out


def _modality_file(subject: Path, modality: str) -> Path:
    for suffix in (".nii.gz", ".nii"):
        file = subject / f"{subject.name}_{modality}{suffix}"
        if file.is_file():
            return file
    raise DataError(
        f"{subject}: missing modality file {subject.name}_{modality}.nii.gz (expected one per modality)"
    )


def read_brats(root: Path, modalities: Sequence[str]) -> list[BagRecord]:
    """One BagRecord per subject folder (label HGG or LGG, instances = its modality files in
    `modalities` order, where = the subject folder), sorted by subject id. Checks the layout
    and, when name_mapping.csv is present, that its Grade agrees with the folder (subjects it
    does not list are accepted). Volumes are not opened here (see load_bag)."""
    root, mods = Path(root), _check_modalities(modalities)
    if not root.is_dir():
        raise DataError(f"BraTS root {root} not found (expected a folder holding HGG/ and LGG/)")
    mapping_file = root / MAPPING
    mapping = _read_mapping(mapping_file) if mapping_file.is_file() else {}
    found: dict[str, list[Path]] = {}
    for grade in GRADES:
        folder = root / grade
        if not folder.is_dir():
            raise DataError(f"{folder}: grade folder missing (expected {grade}/<subject>/ folders)")
        subjects = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not subjects:
            raise DataError(f"{folder}: empty grade folder (expected one folder per subject)")
        found[grade] = subjects
    # Both grades first: a subject in both is the clearer error than a grade mismatch with the mapping.
    hgg = {s.name: s for s in found["HGG"]}
    for subject in found["LGG"]:
        if subject.name in hgg:
            raise DataError(
                f"subject {subject.name} is in both {hgg[subject.name]} and {subject} (expected one grade)"
            )
    records = []
    for grade, subjects in found.items():
        for subject in subjects:
            listed = mapping.get(subject.name)
            if listed and listed[0] != grade:
                raise DataError(
                    f"{mapping_file}:{listed[1]}: subject {subject.name} is graded {listed[0]} "
                    f"but lies in {root / grade} (expected the same grade)"
                )
            paths = tuple(_modality_file(subject, m) for m in mods)
            records.append(BagRecord(subject.name, grade, paths, str(subject)))
    return sorted(records, key=lambda r: r.bag_id)


def _read_volumes(record: BagRecord) -> list[np.ndarray]:
    """The modality volumes as float32, after checking that each is 3-D and all share a shape."""
    import nibabel as nib  # optional heavy dependency: only BraTS needs it

    images, shapes = [], []
    for path in record.instances:
        try:
            img = nib.load(path)
        except (nib.filebasedimages.ImageFileError, OSError, EOFError, zlib.error, ValueError) as e:
            raise DataError(
                f"{path}: cannot read NIfTI header ({type(e).__name__}: {e}); expected a .nii(.gz) volume"
            ) from None
        if len(img.shape) != 3:
            raise DataError(f"{path}: volume of shape {img.shape} (expected a 3-D volume)")
        images.append(img)
        shapes.append(tuple(img.shape))
    if len(set(shapes)) > 1:
        listed = ", ".join(f"{p.name} {s}" for p, s in zip(record.instances, shapes, strict=True))
        raise DataError(
            f"{record.where}: modalities differ in shape ({listed}); expected one shape per subject"
        )
    volumes = []
    for path, img in zip(record.instances, images, strict=True):
        try:  # a truncated .gz only fails here, when the data are decompressed
            volumes.append(np.asarray(img.dataobj, dtype=np.float32))
        except (OSError, EOFError, zlib.error, ValueError) as e:
            raise DataError(
                f"{path}: cannot read volume data ({type(e).__name__}: {e}); expected a complete .nii(.gz) file"
            ) from None
    return volumes


def normalise(volume: np.ndarray, modality: str, keep: np.ndarray | None = None) -> np.ndarray:
    """float32 0..255 (module docstring, step 1) of the slices `keep` (default all), with the
    statistics of the whole volume; background (0) stays 0."""
    part = volume if keep is None else volume[..., keep]
    if modality == "seg":
        return np.clip(part * SEG_SCALE, 0, 255).astype(np.float32)
    values = volume[volume != 0].astype(np.float64)
    if values.size == 0:
        return np.zeros_like(part, dtype=np.float32)
    mean, sd = float(values.mean()), float(values.std())
    z = (part - mean) / (sd if sd > 0 else 1.0)
    return np.where(part != 0, 1 + (np.clip(z, -3, 3) + 3) / 6 * 254, 0).astype(np.float32)


def select_slices(
    brain_fraction: np.ndarray, slice_step: int, max_slices: int | None, min_brain_fraction: float
) -> np.ndarray:
    """Indices of the kept slices (module docstring, step 2), ascending."""
    keep = np.flatnonzero(brain_fraction >= min_brain_fraction)[::slice_step]
    if max_slices is not None and len(keep) > max_slices:
        keep = keep[np.round(np.linspace(0, len(keep) - 1, max_slices)).astype(int)]
    return keep


def _resize(plane: np.ndarray, size: int) -> np.ndarray:
    """float [H, W] -> float [size, size], letterboxed (aspect kept, padded with 0)."""
    h, w = plane.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    # PIL's BILINEAR widens its kernel when shrinking: antialiased, unlike a plain bilinear sample.
    resized = np.asarray(Image.fromarray(plane).resize((nw, nh), Image.Resampling.BILINEAR))
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    return out


def load_bag(
    record: BagRecord,
    modalities: Sequence[str],
    image_size: int,
    slice_step: int = 1,
    max_slices: int | None = None,
    min_brain_fraction: float = 0.01,
) -> np.ndarray:
    """uint8 [N_slices, len(modalities), image_size, image_size] for one subject (see the module
    docstring for the normalisation, slice selection and resizing)."""
    mods = _check_modalities(modalities)
    if len(mods) != len(record.instances):
        raise ConfigError(f"{record.where}: {len(mods)} modalities for {len(record.instances)} volumes")
    if image_size < 1 or slice_step < 1 or (max_slices is not None and max_slices < 1):
        raise ConfigError("image_size, slice_step and max_slices must be >= 1")
    if not 0 <= min_brain_fraction <= 1:
        raise ConfigError(f"min_brain_fraction {min_brain_fraction} is not between 0 and 1")
    volumes = _read_volumes(record)
    brain_fraction = np.mean(np.any(np.stack(volumes) != 0, axis=0), axis=(0, 1))
    keep = select_slices(brain_fraction, slice_step, max_slices, min_brain_fraction)
    if len(keep) == 0:
        raise DataError(
            f"{record.where}: no slice left (max brain fraction {brain_fraction.max():.3f}, "
            f"min_brain_fraction={min_brain_fraction}, slice_step={slice_step}, max_slices={max_slices}); "
            "expected at least one slice with brain tissue"
        )
    out = np.empty((len(keep), len(mods), image_size, image_size), dtype=np.uint8)
    for c, (volume, modality) in enumerate(zip(volumes, mods, strict=True)):
        norm = normalise(volume, modality, keep)  # only the kept slices need resizing
        for i in range(len(keep)):
            out[i, c] = np.clip(np.rint(_resize(norm[..., i], image_size)), 0, 255)
    return out


class BagSet(CachedBags):
    """The decoded bags of `read_brats` records (`.bags`, in records order), each cached on disk
    keyed by its volumes' bytes and every decoding parameter; `.save()` writes the cache."""

    def __init__(
        self,
        records: Sequence[BagRecord],
        modalities: Sequence[str],
        image_size: int,
        slice_step: int = 1,
        max_slices: int | None = None,
        min_brain_fraction: float = 0.01,
    ) -> None:
        mods = _check_modalities(modalities)
        params = f"brats:{','.join(mods)}:{image_size}:{slice_step}:{max_slices}:{min_brain_fraction}"
        super().__init__(
            records,
            params,
            lambda r: load_bag(r, mods, image_size, slice_step, max_slices, min_brain_fraction),
        )
