"""format: csv (pipeline.data.csvtable): the group's Wound-1-0 layout read through the same
data stage as MedPix; bad tables are one line naming file:line and column."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from wound_folder import HEADER, TYPES, wound_folder, write_csv

from core.errors import ConfigError, DataError
from core.schema import TokenizerConfig
from pipeline.config.loader import load_dataset_config
from pipeline.data.dataset import load_data
from pipeline.data.medpix import read_dataset

REPO = Path(__file__).resolve().parents[1]
TOKS = {"teacher": TokenizerConfig(vocab_size=300, max_length=32), "student": TokenizerConfig(max_length=12)}


def wound(root: Path, *overrides: str, name: str = "wound"):
    return load_dataset_config(name, [f"root={root}", *overrides])


@pytest.fixture
def folder(tmp_path) -> Path:
    return wound_folder(tmp_path / "Wound-1-0")


def test_the_groups_layout_reads_with_the_wound_config(folder):
    splits = read_dataset(wound(folder))
    assert {k: len(v) for k, v in splits.items()} == {"train": 20, "dev": 5, "test": 5}
    first = splits["train"][0]
    assert first.image_path == folder / "images" / "IMG_000.jpg"  # the value carries the extension
    assert first.labels == {"type": "Pressure", "severity": "Severe"}
    assert first.text == "No description available"  # empty description, as their loader does
    assert splits["train"][1].text == "diabetic wound, seen at visit 1, dressing changed"  # quoted comma
    assert first.where == f"{folder / 'metadata_train.csv'}:2" and first.case_id == "IMG_000.jpg"
    assert {s.labels["type"] for s in splits["train"]} == set(TYPES)


def test_loads_into_batches_stretched_or_letterboxed(folder):
    cfg = wound(folder)
    bundle = load_data(cfg, 32, TOKS)
    assert bundle.num_classes() == {"type": 10, "severity": 3}
    batch = next(iter(bundle.loader("train", 8)))
    assert batch["image"].shape == (8, 3, 32, 32)
    # IMG_001 is 41 x 37: letterboxed it has black rows; stretched it fills the square
    assert batch["image"][1, :, 0].max() == 0
    from core.schema import PreprocessConfig

    stretched = load_data(cfg, 32, TOKS, preprocess=PreprocessConfig(resize="stretch"))
    assert stretched.splits["train"].t["image"][1, :, 0].min() > 0


def test_older_files_name_the_image_column_file_path(tmp_path):
    root = wound_folder(tmp_path / "old", header=("file_path", *HEADER[1:]))
    assert len(read_dataset(wound(root))["dev"]) == 5


def test_their_renamed_columns_map_to_config_keys(tmp_path):
    root = wound_folder(tmp_path / "renamed", header=("path", "wound_type", "grade", "note"))
    cfg = wound(
        root, "tasks={type: wound_type, severity: grade}", "text.fields=[note]", "table.image_columns=[path]"
    )
    assert read_dataset(cfg)["test"][0].labels == {"type": "Burn", "severity": "Moderate"}


def test_bom_quoted_commas_newlines_and_windows_line_ends(folder):
    rows = [
        ("IMG_000.jpg", "Pressure", "Severe", 'heel, "stage 3"\r\nsecond line'),
        ("IMG_001.png", "Diabetic", "Moderate", "plain"),
    ]
    for split in ("train", "dev", "test"):  # every split the same two rows, each file its own way
        write_csv(folder / f"metadata_{split}.csv", HEADER, rows, encoding="utf-8-sig", lineterminator="\r\n")
    cfg = wound(folder, "unseen_labels=drop")
    from pipeline.data.csvtable import read_split

    train = read_split(cfg, "train")
    assert train[0].text == 'heel, "stage 3"\r\nsecond line' and train[0].labels["type"] == "Pressure"
    assert train[1].where.endswith("metadata_train.csv:4")  # the row after a two-line field
    assert (folder / "metadata_train.csv").read_bytes()[:3] == b"\xef\xbb\xbf"


def _rewrite(path: Path, change) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    change(lines)
    path.write_text("\n".join(lines), encoding="utf-8")


BAD = {
    "missing column": (
        lambda r: _rewrite(
            r / "metadata_dev.csv", lambda ls: ls.__setitem__(0, "img_path,type,grade,description")
        ),
        lambda r: (
            f"{r / 'metadata_dev.csv'}:1: missing column 'severity' (dataset.tasks.severity); "
            "columns found: img_path, type, grade, description"
        ),
    ),
    "missing image column": (
        lambda r: _rewrite(
            r / "metadata_train.csv", lambda ls: ls.__setitem__(0, "image,type,severity,description")
        ),
        lambda r: f"{r / 'metadata_train.csv'}:1: missing column 'img_path' or 'file_path'",
    ),
    "missing image": (
        lambda r: (r / "images" / "IMG_022.png").unlink(),
        lambda r: f"{r / 'metadata_dev.csv'}:4: image file not found: {r / 'images' / 'IMG_022.png'}",
    ),
    "unseen label": (
        lambda r: _rewrite(
            r / "metadata_test.csv", lambda ls: ls.__setitem__(2, ls[2].replace("Abrasion", "Frostbite"))
        ),
        lambda r: (
            f"{r / 'metadata_test.csv'}:3: label 'Frostbite' of task 'type' does not occur in the train split"
        ),
    ),
    "blank label": (
        lambda r: _rewrite(
            r / "metadata_train.csv", lambda ls: ls.__setitem__(3, ls[3].replace("Venous", ""))
        ),
        lambda r: f"{r / 'metadata_train.csv'}:4: missing label field 'type' (task 'type')",
    ),
    "ragged row": (
        lambda r: _rewrite(r / "metadata_train.csv", lambda ls: ls.__setitem__(5, ls[5] + ",extra")),
        lambda r: f"{r / 'metadata_train.csv'}:6: expected 4 fields (the header's), got 5",
    ),
    "missing split file": (
        lambda r: (r / "metadata_test.csv").unlink(),
        lambda r: f"{r / 'metadata_test.csv'}: table not found",
    ),
    "not UTF-8": (
        lambda r: (r / "metadata_dev.csv").write_bytes(
            b"img_path,type,severity,description\nIMG_020.png,Pressure,Severe,br\xfbl\xe9\n"
        ),
        lambda r: f"{r / 'metadata_dev.csv'}:2: not UTF-8 text (byte 0xfb)",
    ),
}


@pytest.mark.parametrize("problem", list(BAD))
def test_bad_tables_are_one_line_and_write_nothing(problem, folder, kdsweep_cache):
    breaks, expected = BAD[problem]
    breaks(folder)
    with pytest.raises(DataError) as info:
        load_data(wound(folder), 32, TOKS)
    assert "\n" not in str(info.value) and expected(folder) in str(info.value), str(info.value)
    assert list(kdsweep_cache.iterdir()) == []


def test_the_describe_cli_on_the_groups_layout_and_its_errors(folder):
    cmd = [sys.executable, "-m", "pipeline.data", "describe", "wound", "--root", str(folder)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "task type <- type (10 classes)" in done.stdout and "train     20 samples" in done.stdout
    BAD["missing image"][0](folder)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "metadata_dev.csv:4" in done.stderr


def test_case_fields_are_refused_for_csv(folder):
    with pytest.raises(ConfigError, match=r"text.case_fields: format csv has no case files"):
        wound(folder, "text.case_fields=[Case.History]")


def test_the_synthetic_wound_set_is_the_groups_layout(synth_wound):
    assert {p.name for p in synth_wound.glob("*.csv")} == {
        "metadata.csv", "metadata_train.csv", "metadata_dev.csv", "metadata_test.csv",
    }  # fmt: skip
    splits = read_dataset(load_dataset_config("synthetic-wound", [f"root={synth_wound}"]))
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "dev": 20, "test": 20}
    train = Counter(s.labels["type"] for s in splits["train"])
    assert set(train) == set(TYPES) and train.most_common(1)[0][0] == "Pressure"
    assert any(s.text == "No description available" for split in splits.values() for s in split)
    assert {s.image_path.suffix for s in splits["train"]} == {".png", ".jpg"}


@pytest.mark.slow
def test_one_tiny_epoch_on_the_groups_layout(folder, tmp_path):
    from support import sqlite_store, tiny_overrides

    env = {**os.environ, "MLFLOW_TRACKING_URI": sqlite_store(tmp_path / "mlflow.db"), "HF_HUB_OFFLINE": "1"}
    args = ["run", "default", "--no-track", "dataset=wound", *tiny_overrides(folder, epochs=1)]
    args += ["train.batch_size=8", "preprocess.resize=stretch", "preprocess.normalize=given"]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = " ".join(done.stdout.split())  # the console wraps long lines
    assert "data wound: train 20 / dev 5 / test 5; tasks type (10 classes), severity (3 classes)" in out
    assert "test/avg_f1" in out
    shutil.rmtree(folder)
