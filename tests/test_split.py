"""python -m pipeline.data split: the research group's train/dev/test split of metadata.csv."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from wound_folder import HEADER, TYPES, write_csv

from core.errors import ConfigError, DataError
from pipeline.config.loader import load_dataset_config
from pipeline.data.splitter import split_table

REPO = Path(__file__).resolve().parents[1]
# The group's published counts per type: train / dev / test (shared/reference/README.md).
COUNTS = {
    "Pressure": (234, 50, 51), "Diabetic": (215, 46, 46), "Venous": (171, 37, 37), "Surgical": (150, 33, 32),
    "Bruises": (95, 20, 20), "Burn": (61, 13, 13), "Abrasion": (59, 12, 13), "Laceration": (49, 11, 10),
    "Normal": (36, 8, 8), "Cut": (24, 5, 5),
}  # fmt: skip


def their_table(root: Path) -> Path:
    """metadata.csv with Wound-1-0's 1564 rows per type (Pressure 335, ...), in a shuffled order."""
    root.mkdir(parents=True, exist_ok=True)
    types = [t for t, c in COUNTS.items() for _ in range(sum(c))]
    order = sorted(range(len(types)), key=lambda i: (i * 7919) % len(types))
    rows = [(f"w{i:04d}.jpg", types[i], ("Severe", "Moderate", "Mild")[i % 3], f"note {i}") for i in order]
    write_csv(root / "metadata.csv", HEADER, rows)
    return root


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def split_cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.data", "split", "wound", "--root", str(root), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def test_reproduces_the_groups_counts(tmp_path):
    root = their_table(tmp_path / "w")
    done = split_cli(root)
    assert done.returncode == 0, done.stderr
    parts = {s: read(root / f"metadata_{s}.csv") for s in ("train", "dev", "test")}
    assert {s: len(rows) for s, rows in parts.items()} == {"train": 1094, "dev": 235, "test": 235}
    for i, split in enumerate(("train", "dev", "test")):
        counts = Counter(r["type"] for r in parts[split])
        assert {t: counts[t] for t in COUNTS} == {t: c[i] for t, c in COUNTS.items()}, split
    assert set(parts["train"][0]) == set(HEADER)  # every column kept
    every = [r["img_path"] for rows in parts.values() for r in rows]
    assert sorted(every) == sorted(r["img_path"] for r in read(root / "metadata.csv"))
    assert "train   1094 rows" in done.stdout and "column type (10 labels)" in done.stdout
    assert ["Pressure", "234", "50", "51"] in [line.split() for line in done.stdout.splitlines()]
    assert "column severity (3 labels)" in done.stdout


def test_existing_split_files_need_force(tmp_path):
    root = their_table(tmp_path / "w")
    assert split_cli(root).returncode == 0
    before = (root / "metadata_dev.csv").read_bytes()
    done = split_cli(root, "--seed", "7")
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1
    assert f"{root / 'metadata_train.csv'}: split file exists; pass --force to overwrite" in done.stderr
    assert (root / "metadata_dev.csv").read_bytes() == before
    done = split_cli(root, "--seed", "7", "--force")
    assert done.returncode == 0, done.stderr
    assert (root / "metadata_dev.csv").read_bytes() != before  # another seed, another split


def test_fractions_seed_and_column_are_options(tmp_path):
    root = their_table(tmp_path / "w")
    cfg = load_dataset_config("wound", [f"root={root}"])
    text = split_table(cfg, by="severity", fractions=(0.8, 0.1, 0.1), seed=1)
    sizes = {s: len(read(root / f"metadata_{s}.csv")) for s in ("train", "dev", "test")}
    assert sizes == {"train": 1251, "dev": 156, "test": 157} and "column severity" in text.splitlines()[4]
    with pytest.raises(ConfigError, match=r"--fractions: expected three values > 0 summing to 1"):
        split_table(cfg, fractions=(0.7, 0.2, 0.2), force=True)


def test_bad_tables_are_one_line_errors(tmp_path):
    root = their_table(tmp_path / "w")
    cfg = load_dataset_config("wound", [f"root={root}"])
    with pytest.raises(
        DataError, match=r"metadata.csv:1: missing column 'grade' \(--by.*columns found: img_path, type"
    ):
        split_table(cfg, by="grade")
    write_csv(root / "metadata.csv", HEADER, [(f"{t}.png", t, "Mild", "") for t in TYPES])  # one row per type
    with pytest.raises(DataError, match=r"cannot stratify 10 rows"):
        split_table(cfg)
    assert not (root / "metadata_train.csv").exists()
    done = split_cli(tmp_path / "nowhere")
    assert done.returncode == 2 and "root" in done.stderr and done.stderr.count("\n") == 1
    medpix = subprocess.run(
        [sys.executable, "-m", "pipeline.data", "split", "synthetic-medpix", "--root", str(root)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert medpix.returncode == 2 and "only format csv is split here" in medpix.stderr
