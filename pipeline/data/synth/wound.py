"""A synthetic Wound-1-0 in the research group's layout (pipeline.data.csvtable)::

    <out>/images/wound_00001.png ...         one flat folder, RGB, some .jpg
    <out>/metadata.csv                        every row: img_path,type,severity,description
    <out>/metadata_{train,dev,test}.csv

The 10 wound types and 3 severities are the real ones, with their real shares per split
(shared/reference: train/dev/test counts), allocated by largest remainder with every class at
least once per split where the split has room, so a small set still has each class in train.
Type and severity are drawn independently. The cues are MedPix's (synth/medpix.py): per task
an image cue (brightness for type, a blob's position for severity), a phrase in the
description, or a code in the text that only together with the image tells the class; 8 % of
cues show another class, so a model can learn it but not perfectly. Descriptions with no
phrase are sometimes left empty, as in the real files (the reader puts "No description
available"). Same seed -> same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data.csvtable import write_table
from pipeline.data.synth.medpix import FILLER, WOUND, _sample

# The group's counts per split (train, dev, test), in WOUND.classes order.
TYPE_COUNTS = {
    "train": (234, 215, 171, 150, 95, 61, 59, 49, 36, 24),
    "dev": (50, 46, 37, 33, 20, 13, 12, 11, 8, 5),
    "test": (51, 46, 37, 32, 20, 13, 13, 10, 8, 5),
}
SEVERITY_COUNTS = {"train": (547, 388, 159), "dev": (120, 91, 24), "test": (117, 93, 25)}
COLUMNS = ("img_path", "type", "severity", "description")
EMPTY_SHARE = 0.3  # of descriptions that carry no cue phrase
JPEG_SHARE = 0.25


def allocate(n: int, shares: tuple[int, ...]) -> list[int]:
    """`n` split into len(shares) counts proportional to `shares` (largest remainder), each at
    least 1 when n allows it (taken from the class furthest above its quota)."""
    total = sum(shares)
    quota = [n * s / total for s in shares]
    counts = [int(q) for q in quota]
    for i in sorted(range(len(shares)), key=lambda i: (counts[i] - quota[i], i))[: n - sum(counts)]:
        counts[i] += 1
    if n >= len(shares):
        for i, c in enumerate(counts):
            if c == 0:
                counts[i] = 1
                donor = max(
                    (j for j in range(len(counts)) if counts[j] > 1), key=lambda j: counts[j] - quota[j]
                )
                counts[donor] -= 1
    return counts


def generate_wound(out: Path, n: dict[str, int], image_size: int = 64, seed: int = 0) -> None:
    """Write the dataset to `out`; deterministic per seed."""
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[tuple[str, str, str, str]]] = {}
    number = 0
    for split in ("train", "dev", "test"):
        types = np.repeat(np.arange(10), allocate(n[split], TYPE_COUNTS[split]))
        severities = np.repeat(np.arange(3), allocate(n[split], SEVERITY_COUNTS[split]))
        types, severities = rng.permutation(types), rng.permutation(severities)
        rows = []
        for t, s in zip(types.tolist(), severities.tolist(), strict=True):
            number += 1
            labels, caption, img = _sample(WOUND, rng, image_size, given=(t, s))
            if caption in FILLER and rng.random() < EMPTY_SHARE:  # no cue phrase in it
                caption = ""
            ext = ".jpg" if rng.random() < JPEG_SHARE else ".png"
            name = f"{WOUND.prefix}_{number:05d}{ext}"
            if ext == ".jpg":
                img.save(out / "images" / name, quality=95)
            else:
                img.save(out / "images" / name, optimize=False)
            rows.append((name, labels[0], labels[1], caption))
        tables[split] = rows
    every = [row for split in ("train", "dev", "test") for row in tables[split]]
    write_table(out / "metadata.csv", COLUMNS, every)
    for split, rows in tables.items():
        write_table(out / f"metadata_{split}.csv", COLUMNS, rows)
