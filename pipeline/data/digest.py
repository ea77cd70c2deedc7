"""A split's digest: what the MLflow UI shows beside each run's dataset input (issue 16), so two
runs on the same data show the same digest and a changed file, label, text or membership
changes it.

The digest hashes, per sample in split order: its case id, each of its files (path relative
to the dataset root, and a SHA-256 of the bytes), its labels and its text. Paths are relative,
so a copy of the data elsewhere (another node, another clone) gives the same digest. File
hashes are kept per process, keyed by (path, size, mtime): the trials of a sweep that share a
worker hash each file once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.data.medpix import Sample

LENGTH = 16  # hex characters: MLflow stores at most 36
_FILES: dict[tuple[str, int, int], bytes] = {}


def file_hash(path: Path) -> bytes:
    """SHA-256 of a file's bytes, remembered while the file's size and mtime stay the same."""
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FILES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILES[key] = h.digest()
    return _FILES[key]


def sample_files(sample: Sample) -> tuple[Path, ...]:
    """A sample's files: a bag's instances (PNGs, or a BraTS subject's volumes), else its image."""
    record = getattr(sample, "record", None)
    return tuple(record.instances) if record is not None else (sample.image_path,)


def split_digest(root: str | Path, samples: Sequence[Sample]) -> str:
    """The digest of one split (see the module docstring)."""
    base = Path(root).resolve()
    h = hashlib.sha256()
    for s in samples:
        h.update(f"case\0{s.case_id}\0".encode())
        for f in sample_files(s):
            p = Path(f).resolve()
            rel = p.relative_to(base) if p.is_relative_to(base) else p
            h.update(f"file\0{rel.as_posix()}\0".encode())
            h.update(file_hash(p))
        for task in sorted(s.labels):
            h.update(f"label\0{task}\0{s.labels[task]}\0".encode())
        h.update(f"text\0{s.text}\0".encode())
    return h.hexdigest()[:LENGTH]
