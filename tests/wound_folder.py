"""A hand-made Wound-1-0 folder (the group's layout, written without pipeline code): 30 RGB
photographs of odd sizes, .png and .jpg, and metadata*.csv with the columns their code reads."""

from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image

TYPES = (
    "Pressure",
    "Diabetic",
    "Venous",
    "Surgical",
    "Bruises",
    "Burn",
    "Abrasion",
    "Laceration",
    "Normal",
    "Cut",
)
SEVERITIES = ("Severe", "Moderate", "Mild")
HEADER = ("img_path", "type", "severity", "description")


def write_csv(path: Path, header: tuple[str, ...], rows: list[tuple[str, ...]], **kw) -> None:
    with path.open("w", encoding=kw.pop("encoding", "utf-8"), newline="") as f:
        csv.writer(f, lineterminator=kw.pop("lineterminator", "\n")).writerows([header, *rows])


def wound_folder(root: Path, header: tuple[str, ...] = HEADER) -> Path:
    """30 images: per type 2 in train, and 5 types each in dev and test; returns `root`."""
    (root / "images").mkdir(parents=True)
    splits: dict[str, list[tuple[str, ...]]] = {"train": [], "dev": [], "test": []}
    for i in range(30):
        t = TYPES[i % 10]
        split = "train" if i < 20 else ("dev" if i < 25 else "test")
        name = f"IMG_{i:03d}.{'jpg' if i % 3 == 0 else 'png'}"
        size = (40 + i, 30 + (i * 7) % 20)  # photographs are neither square nor of one size
        Image.new("RGB", size, (20 * (i % 10), 120, 90)).save(root / "images" / name)
        description = "" if i % 7 == 0 else f"{t.lower()} wound, seen at visit {i}, dressing changed"
        splits[split].append((name, t, SEVERITIES[i % 3], description))
    write_csv(root / "metadata.csv", header, [r for rows in splits.values() for r in rows])
    for split, rows in splits.items():
        write_csv(root / f"metadata_{split}.csv", header, rows)
    return root
