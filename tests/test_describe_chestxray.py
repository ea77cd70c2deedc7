"""`python -m pipeline.data describe` on ChestX-ray14-format datasets (format: chestxray): per split
(train, the data stage's val carve-out, test) images, patients, No Finding share and labels per
image; per label positives and prevalence; the subset's share; one-line errors for a bad folder."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config.loader import load_dataset_config
from pipeline.data.__main__ import main
from pipeline.data.chestxray import LABELS, NO_FINDING, label_matrix, read_chestxray, stage_splits
from pipeline.data.synth.chestxray import generate_chestxray

REPO = Path(__file__).resolve().parents[1]
SHARED_NIH = REPO.parent / "shared" / "datasets" / "nih-chestxray14-labels"


@pytest.fixture(scope="module")
def cxr(tmp_path_factory) -> Path:
    """40 synthetic patients at 16 px. Read-only: copy it to modify it."""
    out = tmp_path_factory.mktemp("describe-cxr") / "cxr"
    generate_chestxray(out, 40, image_size=16, seed=0)
    return out


def describe(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["describe", *args])
    out, err = capsys.readouterr()
    return code, out, err


def row(out: str, name: str) -> list[str]:
    """The cells of the table row that starts with `name` (cells are 2+ spaces apart)."""
    (line,) = [x for x in out.splitlines() if re.match(rf"  {re.escape(name)}(  |$)", x)]
    return re.split(r"\s{2,}", line.strip())


def test_describe_counts_match_the_data_stage(cxr, capsys):
    code, out, err = describe(capsys, "synthetic-chestxray", "--root", str(cxr))
    assert code == 0 and err == "", err
    assert out.startswith(
        f"dataset synthetic-chestxray at {cxr} (NIH ChestX-ray14 layout, table Data_Entry_2017.csv)"
    )
    assert (
        "  splits by patient; test: the images in test_list.txt; val: 10% of the train_val patients (seed 0)\n"
        in out
    )
    splits = stage_splits(load_dataset_config("synthetic-chestxray", [f"root={cxr}"]))
    assert splits == read_chestxray(cxr)  # the data stage's split: val 10 %, seed 0
    columns = {**splits, "all": [r for part in splits.values() for r in part]}
    for name, records in columns.items():
        y = label_matrix(records)
        n, patients = len(records), len({r.patient_id for r in records})
        cells = row(out, name)
        assert cells[:3] == [name, str(n), str(patients)], cells
        assert cells[4] == f"{100 * (y.sum(axis=1) == 0).mean():.1f} %"  # No Finding share
        assert cells[5] == f"{y.sum(axis=1).mean():.2f}"  # labels per image
    table_rows = len((cxr / "Data_Entry_2017.csv").read_text().splitlines()) - 1
    assert row(out, "all")[1] == str(table_rows)
    y = {name: label_matrix(records) for name, records in columns.items()}
    for k, label in enumerate(LABELS + (NO_FINDING,)):
        cells = row(out, label)
        assert len(cells) == 1 + 2 * len(columns)
        for i, name in enumerate(columns):
            positives = y[name][:, k] if k < len(LABELS) else y[name].sum(axis=1) == 0
            assert cells[1 + 2 * i] == str(int(positives.sum())), (label, name, cells)
            assert cells[2 + 2 * i] == f"{100 * positives.mean():.1f} %", (label, name, cells)
    assert "subset" not in out and "not checked" not in out


def test_describe_reports_the_subset_share(cxr, capsys):
    code, out, err = describe(capsys, "synthetic-chestxray", "--root", str(cxr), "subset=0.5")
    assert code == 0, err
    kept = [r for part in read_chestxray(cxr, subset=0.5).values() for r in part]
    total = len((cxr / "Data_Entry_2017.csv").read_text().splitlines()) - 1
    assert (
        f"  subset 0.5: 20 of 40 patients (50.0%), {len(kept)} of {total} images "
        f"({len(kept) / total:.1%}), stratified by label"
    ) in out
    assert row(out, "all")[1:3] == [str(len(kept)), "20"]


def test_describe_without_lists_names_the_fallback_split(cxr, tmp_path, capsys):
    root = shutil.copytree(cxr, tmp_path / "cxr")
    (root / "train_val_list.txt").unlink()
    (root / "test_list.txt").unlink()
    code, out, err = describe(capsys, "synthetic-chestxray", "--root", str(root))
    assert code == 0, err
    assert "test: a stratified 20% of the patients (seed 0; no list files); val: 10%" in out
    assert row(out, "test")[2] == "8"


def test_skip_images_reads_a_table_without_images(cxr, tmp_path, capsys):
    root = shutil.copytree(cxr, tmp_path / "cxr")
    shutil.rmtree(root / "images")
    code, out, err = describe(capsys, "synthetic-chestxray", "--root", str(root))
    assert code == 2 and out == ""
    assert re.fullmatch(r"error: \S+Data_Entry_2017\.csv:\d+: image file not found: \S+\.png\n", err), err
    code, out, err = describe(capsys, "synthetic-chestxray", "--root", str(root), "--skip-images")
    assert code == 0 and err == "", err
    assert "  image files not checked (--skip-images)\n" in out and row(out, "all")[2] == "40"


@pytest.mark.parametrize(
    "problem, expected",
    [
        ("missing root", r"error: chest X-ray root \S+absent not found"),
        ("no table", r"error: \S+: no label table found \(expected one of Data_Entry_2017\.csv, "),
        (
            "unknown label",
            r"error: \S+Data_Entry_2017\.csv:2: unknown label 'Pneumonitis' in 'Finding Labels'",
        ),
        (
            "list names an unknown image",
            r"error: \S+test_list\.txt:1: image 'x\.png' is not in the label table",
        ),
    ],
)
def test_a_bad_folder_is_one_line(cxr, tmp_path, capsys, problem, expected):
    root = shutil.copytree(cxr, tmp_path / "cxr")
    if problem == "missing root":
        root = tmp_path / "absent"
    elif problem == "no table":
        (root / "Data_Entry_2017.csv").unlink()
    elif problem == "unknown label":
        table = root / "Data_Entry_2017.csv"
        lines = table.read_text().splitlines()
        fields = lines[1].split(",")
        fields[1] = "Pneumonitis"
        table.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n")
    else:
        (root / "test_list.txt").write_text("x.png\n")
    code, out, err = describe(capsys, "synthetic-chestxray", "--root", str(root))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and re.match(expected, err), err


def test_skip_images_is_refused_for_medpix_datasets(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["describe", "synthetic-wound", "--root", str(tmp_path), "--skip-images"])
    assert e.value.code == 2
    assert "only format chestxray can skip images" in capsys.readouterr().err


def test_cli_entry_point(cxr):
    cmd = [sys.executable, "-m", "pipeline.data", "describe", "synthetic-chestxray", "--root", str(cxr)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^  Hernia +\d+ ", proc.stdout, re.M) and "No Finding" in proc.stdout


@pytest.mark.slow  # ~10 s: the stratified subset and splits at the full 112k-row scale
@pytest.mark.shared_data
def test_describe_the_real_nih_table(capsys):
    table = SHARED_NIH / "Data_Entry_2017_v2020.csv.gz"
    if not table.is_file():
        pytest.skip(f"../shared/datasets/nih-chestxray14-labels not present: {table} is missing")
    code, out, err = describe(capsys, "chestxray", "--root", str(SHARED_NIH), "--skip-images")
    assert code == 0, err
    assert "test: a stratified 20% of the patients (seed 0; no list files); val: 10%" in out
    assert "subset 0.2: 6,161 of 30,805 patients (20.0%)" in out  # chestxray.yaml: subset 0.2
    assert row(out, "all")[2] == "6,161"
