"""pipeline.data.chestxray and pipeline.data.synth.chestxray: the NIH ChestX-ray14 layout, patient-grouped
splits, the stratified subset (at full scale on the real NIH table), and the synthetic generator."""

from __future__ import annotations

import gzip
import re
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import DataError
from pipeline.data.chestxray import (
    LABELS,
    XrayRecord,
    check_leakage,
    find_table,
    grouped_stratified_split,
    label_matrix,
    prevalence,
    read_chestxray,
    read_table,
)
from pipeline.data.synth.chestxray import (
    CUE_CENTRES,
    CUE_SIGN,
    PREVALENCE,
    _copula_labels,
    generate_chestxray,
    main,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_NIH = REPO.parent / "shared" / "datasets" / "nih-chestxray14-labels"
# Published image prevalences, % (datasets README; Wang et al. 2017, v2020 table).
NIH_PREVALENCE = {
    "Infiltration": 17.74, "Effusion": 11.88, "Atelectasis": 10.31, "Nodule": 5.65, "Mass": 5.16,
    "Pneumothorax": 4.73, "Consolidation": 4.16, "Pleural_Thickening": 3.02, "Cardiomegaly": 2.48,
    "Emphysema": 2.24, "Edema": 2.05, "Fibrosis": 1.50, "Pneumonia": 1.28, "Hernia": 0.20,
}  # fmt: skip
HEADER = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"
TINY = [  # line 2.. of the tiny table
    "00000001_000.png,Cardiomegaly,0,1,57,M,PA",
    "00000001_001.png,Cardiomegaly|Effusion,1,1,58,M,PA",
    "00000002_000.png,No Finding,0,2,80,M,AP",
    "00000003_000.png,Hernia,0,3,81,F,PA",
    "00000004_000.png,Atelectasis|Effusion,0,4,40,F,PA",
]
TINY_LISTS = {
    "train_val_list.txt": ["00000001_000.png", "00000001_001.png", "00000002_000.png", "00000003_000.png"],
    "test_list.txt": ["00000004_000.png"],
}


@pytest.fixture(scope="module")
def nih_table() -> Path:
    """The real NIH label table in ../shared/datasets, or a skip when this machine lacks it."""
    table = SHARED_NIH / "Data_Entry_2017_v2020.csv.gz"
    if not table.is_file():
        pytest.skip(f"../shared/datasets/nih-chestxray14-labels not present: {table} is missing")
    return table


@pytest.fixture(scope="module")
def real_records(nih_table) -> list[XrayRecord]:
    return read_table(nih_table, nih_table.parent / "images")


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """120 synthetic patients at 32 px. Read-only: copy it to modify it."""
    out = tmp_path_factory.mktemp("synth-cxr") / "cxr"
    generate_chestxray(out, 120, image_size=32, seed=0)
    return out


def tiny(root: Path, rows: list[str] = TINY, lists: dict[str, list[str]] | None = TINY_LISTS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Data_Entry_2017.csv").write_text(HEADER + "".join(r + "\n" for r in rows))
    for name, names in (lists or {}).items():
        (root / name).write_text("".join(n + "\n" for n in names))
    return root


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def patients(records: list[XrayRecord]) -> set[str]:
    return {r.patient_id for r in records}


def test_label_order_is_nih_order():
    # The model's output order: a change silently permutes every trained head and every report.
    assert LABELS == (
        "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
        "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
    )  # fmt: skip
    assert dict(zip(LABELS, PREVALENCE, strict=True)) == NIH_PREVALENCE


def test_tiny_table_labels_land_in_label_order(tmp_path):
    records = read_table(tiny(tmp_path) / "Data_Entry_2017.csv", tmp_path / "images")
    assert [r.labels for r in records] == [
        (0, 1) + (0,) * 12, (0, 1, 1) + (0,) * 11, (0,) * 14, (0,) * 13 + (1,), (1, 0, 1) + (0,) * 11,
    ]  # fmt: skip
    assert [(r.patient_id, r.follow_up, r.view) for r in records[:3]] == [
        ("1", 0, "PA"), ("1", 1, "PA"), ("2", 0, "AP"),
    ]  # fmt: skip
    assert records[3].where == f"{tmp_path / 'Data_Entry_2017.csv'}:5"


def test_reads_synthetic_layout(synth):
    splits = read_chestxray(synth)
    assert set(splits) == {"train", "val", "test"} and all(splits.values())
    table = (synth / "Data_Entry_2017.csv").read_text().splitlines()
    assert sum(len(v) for v in splits.values()) == len(table) - 1
    listed = {f: (synth / f).read_text().split() for f in ("train_val_list.txt", "test_list.txt")}
    assert sorted(r.image_path.name for r in splits["test"]) == listed["test_list.txt"]
    assert sorted(r.image_path.name for r in splits["train"] + splits["val"]) == listed["train_val_list.txt"]
    for r in (r for v in splits.values() for r in v):
        assert r.image_path.is_file() and len(r.labels) == 14 and set(r.labels) <= {0, 1}
        assert re.fullmatch(rf"{re.escape(str(synth))}/Data_Entry_2017\.csv:\d+", r.where)
        assert r.view in ("PA", "AP") and r.image_path.name.startswith(f"{int(r.patient_id):08d}_")
        with Image.open(r.image_path) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "L", (32, 32))


def test_splits_are_by_patient_and_val_follows_the_seed(synth):
    a, b, c = (read_chestxray(synth, seed=s, val_fraction=0.25) for s in (0, 0, 1))
    for splits in (a, b, c):
        names = ["train", "val", "test"]
        for i, x in enumerate(names):
            for y in names[i + 1 :]:
                assert not patients(splits[x]) & patients(splits[y]), (x, y)
        train_val = patients(splits["train"]) | patients(splits["val"])
        assert len(patients(splits["val"])) == round(0.25 * len(train_val))
    assert a == b
    assert patients(a["val"]) != patients(c["val"]) and a["test"] == c["test"]


def test_without_lists_the_test_split_is_fixed_and_patient_grouped(synth, tmp_path):
    root = shutil.copytree(synth, tmp_path / "cxr")
    (root / "train_val_list.txt").unlink()
    (root / "test_list.txt").unlink()
    a, b = read_chestxray(root, seed=0), read_chestxray(root, seed=5)
    assert a["test"] == b["test"] and a["val"] != b["val"]  # test does not move with the seed
    assert len(patients(a["test"])) == round(0.2 * 120)
    assert not patients(a["test"]) & (patients(a["train"]) | patients(a["val"]))


def test_subset_keeps_whole_patients_and_is_deterministic(synth):
    full = read_chestxray(synth)
    sub = read_chestxray(synth, subset=0.5, subset_seed=3)
    assert sub == read_chestxray(synth, subset=0.5, subset_seed=3)
    kept = [r for v in sub.values() for r in v]
    assert len(patients(kept)) == 60
    per_patient = Counter(r.patient_id for v in full.values() for r in v)
    assert Counter(r.patient_id for r in kept) == {p: per_patient[p] for p in patients(kept)}


def test_grouped_split_rejects_bad_arguments(tmp_path):
    records = read_table(tiny(tmp_path) / "Data_Entry_2017.csv", tmp_path / "images")
    with pytest.raises(ValueError, match="fraction"):
        grouped_stratified_split(records, 1.0, 0)
    with pytest.raises(DataError, match=r"Data_Entry_2017\.csv:2: cannot split 1 patient"):
        grouped_stratified_split(records[:2], 0.5, 0)


def test_check_leakage_names_patient_and_both_rows():
    row = dict(image_path=Path("x.png"), labels=(0,) * 14, follow_up=0, view="PA")
    splits = {
        "train": [XrayRecord(patient_id="7", where="t.csv:2", **row)],
        "test": [
            XrayRecord(patient_id="8", where="t.csv:3", **row),
            XrayRecord(patient_id="7", where="t.csv:9", **row),
        ],
    }
    with pytest.raises(DataError) as e:
        check_leakage(splits)
    assert str(e.value) == "leakage: patient 7 is in split 'train' (t.csv:2) and split 'test' (t.csv:9)"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _bad_bytes(root: Path) -> None:
    table = root / "Data_Entry_2017.csv"
    table.write_bytes(table.read_bytes().replace(b"Effusion", b"Eff\xffusion", 1))


def _corrupt_gz(root: Path) -> None:
    table = root / "Data_Entry_2017.csv"
    data = gzip.compress(table.read_bytes())
    (root / "Data_Entry_2017.csv.gz").write_bytes(data[:20] + b"\x00" * 16 + data[36:])
    table.unlink()


T, TV, TE = "Data_Entry_2017.csv", "train_val_list.txt", "test_list.txt"
# case -> (file, text, replacement) or a function of the root, and the message (a regex).
# fmt: off
BAD = {
    "unknown label": ((T, "Cardiomegaly|Effusion", "Cardiomegaly|Pneumonitis"),
        rf"{T}:3: unknown label 'Pneumonitis' in 'Finding Labels' \(valid: Atelectasis, Cardiomegaly, .*Hernia, or No Finding\)"),
    "no finding plus a label": ((T, "Hernia", "Hernia|No Finding"), rf"{T}:5: 'No Finding' together with other labels in 'Finding Labels'"),
    "image twice in the table": ((T, "00000004_000.png", "00000001_001.png"),
        rf"{T}:6: image '00000001_001.png' listed twice \(first at \S+{T}:3\)"),
    "image twice in a list": ((TV, "00000003_000.png", "00000002_000.png"),
        rf"{TV}:4: image '00000002_000.png' listed twice \(first at \S+{TV}:3\)"),
    "image in both lists": ((TE, "00000004_000.png", "00000003_000.png"),
        rf"{TE}:1: image '00000003_000.png' listed twice \(first at \S+{TV}:4\)"),
    "patient in two lists": ((T, "Effusion,0,4,", "Effusion,0,2,"),
        rf"leakage: patient 2 is in train_val \(\S+{TV}:3\) and test \(\S+{TE}:1\)"),
    "list names an unknown image": ((TE, "00000004_000.png", "00000004_000.png\n00000099_000.png"),
        rf"{TE}:2: image '00000099_000.png' is not in the label table"),
    "image in neither list": ((TV, "00000003_000.png\n", ""), rf"{T}:5: image '00000003_000.png' is in neither {TV} nor {TE}"),
    "only one list": (lambda r: (r / TE).unlink(), rf"{TE}: not found \(the train_val and test lists come together\)"),
    "missing column": ((T, "Patient ID,", "Patient,"), rf"{T}:1: missing column\(s\) 'Patient ID' \(found: Image Index, "),
    "short row": ((T, "No Finding,0,2", "No Finding"), rf"{T}:4: expected at least 7 fields, got 5"),
    "follow-up not a number": ((T, "Hernia,0,3", "Hernia,zero,3"), rf"{T}:5: 'Follow-up #' 'zero' is not an integer"),
    "not utf-8": (_bad_bytes, rf"{T}:3: not UTF-8 text \(byte 0xff at column 34\)"),
    "corrupt gzip": (_corrupt_gz, rf"{T}\.gz:1: cannot read \("),
}
# fmt: on


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_file_and_line(tmp_path, case):
    mutate, pattern = BAD[case]
    root = tiny(tmp_path / "cxr")
    if callable(mutate):
        mutate(root)
    else:
        _edit(root / mutate[0], mutate[1], mutate[2])
    with pytest.raises(DataError) as e:
        read_chestxray(root, check_images=False)
    message = str(e.value)
    assert "\n" not in message and re.search(pattern, message), message


def test_missing_image_is_an_error_only_when_checked(synth, tmp_path):
    root = shutil.copytree(synth, tmp_path / "cxr")
    line, row = 7, (root / T).read_text().splitlines()[6]  # a row in the middle
    (root / "images" / row.split(",")[0]).unlink()
    with pytest.raises(DataError, match=rf"^\S+{T}:{line}: image file not found: \S+{row.split(',')[0]}$"):
        read_chestxray(root)
    rows = len((root / T).read_text().splitlines()) - 1
    assert sum(len(v) for v in read_chestxray(root, check_images=False).values()) == rows


def test_table_lookup(tmp_path):
    with pytest.raises(DataError, match="not found"):
        find_table(tmp_path / "absent")
    with pytest.raises(DataError, match=r"no label table found \(expected one of Data_Entry_2017\.csv, "):
        find_table(tmp_path)
    tiny(tmp_path)
    (tmp_path / "Data_Entry_2017_v2020.csv.gz").write_bytes(gzip.compress(b"x"))
    with pytest.raises(DataError, match="several label tables"):
        find_table(tmp_path)


def test_generator_is_byte_identical_per_seed(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_chestxray(tmp_path / name, 15, image_size=24, seed=seed)
    a, b, c = (files(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c


def test_generator_labels_look_like_nih():
    # The label model alone (no images): 20k patients pin the statistics down to a few tenths.
    per_patient = _copula_labels(20_000, np.random.default_rng(1))
    y = np.array([labels for images in per_patient for labels in images])
    assert np.abs(y.mean(axis=0) * 100 - np.array(PREVALENCE)).max() < 0.5
    assert 0.15 < (y.sum(axis=1) >= 2).mean() < 0.22  # co-occurrence (real: 18.5 %)
    assert 0.50 < (y.sum(axis=1) == 0).mean() < 0.58  # No Finding (real: 53.8 %)
    sizes = np.array([len(images) for images in per_patient])
    assert 2.0 < sizes.mean() < 2.5 and sizes.max() > 3  # several images per patient
    # Follow-ups of one patient share findings: a label recurs more often than chance.
    pairs = np.array([(a, b) for images in per_patient for a, b in zip(images, images[1:], strict=False)])
    effusion = LABELS.index("Effusion")
    assert pairs[pairs[:, 0, effusion] == 1, 1, effusion].mean() > 2.5 * PREVALENCE[effusion] / 100


def test_images_carry_a_cue_per_label(tmp_path):
    generate_chestxray(tmp_path, 400, image_size=32, seed=2)
    records = [r for v in read_chestxray(tmp_path).values() for r in v]
    pixels = np.stack([np.asarray(Image.open(r.image_path), dtype=float) for r in records])
    y = label_matrix(records)
    tested = 0
    for k, (cx, cy) in enumerate(CUE_CENTRES):
        if y[:, k].sum() < 5:
            continue
        x0, y0 = round(cx * 32), round(cy * 32)
        window = CUE_SIGN[k] * pixels[:, y0 - 2 : y0 + 2, x0 - 2 : x0 + 2].mean(axis=(1, 2))
        pos, neg = window[y[:, k] == 1], window[y[:, k] == 0]
        # P(a positive is brighter there than a negative; darker for the darkening findings)
        auc = (pos[:, None] > neg[None, :]).mean()
        assert auc > 0.8, (LABELS[k], auc)
        tested += 1
    assert tested >= 10


def test_each_cue_is_strongest_at_its_own_place(tmp_path):
    # What a small CNN learns from: per label, the mean positive image minus the mean negative one
    # changes most at that label's own cue centre (of all the cue centres), and clearly: a cheap
    # check, at 24 px, that no two findings draw the same thing in the same place.
    size = 24
    generate_chestxray(tmp_path, 600, image_size=size, seed=3)
    records = [r for v in read_chestxray(tmp_path, check_images=False).values() for r in v]
    pixels = np.stack([np.asarray(Image.open(r.image_path), dtype=float) for r in records])
    y = label_matrix(records).astype(bool)
    at = [(round(cy * size), round(cx * size)) for cx, cy in CUE_CENTRES]
    tested = 0
    for k, name in enumerate(LABELS):
        if y[:, k].sum() < 8 or name == "Emphysema":  # Emphysema darkens both lungs, not one place
            continue
        diff = pixels[y[:, k]].mean(axis=0) - pixels[~y[:, k]].mean(axis=0)
        change = [abs(diff[r - 1 : r + 1, c - 1 : c + 1].mean()) for r, c in at]
        assert int(np.argmax(change)) == k and change[k] > 10, (name, np.round(change, 1))
        tested += 1
    assert tested >= 10


def test_cli_writes_a_readable_set(tmp_path, capsys):
    args = ["--out", str(tmp_path / "cxr"), "--patients", "10", "--image-size", "24", "--seed", "1"]
    assert main(args) == 0
    assert "wrote 10 patients" in capsys.readouterr().out
    assert read_chestxray(tmp_path / "cxr", val_fraction=0.2)["test"]
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "x"), "--patients", "1"])
    assert e.value.code == 2


@pytest.mark.shared_data
def test_real_table_matches_published_counts(real_records):
    assert len(real_records) == 112_120 and len(patients(real_records)) == 30_805
    assert dict(zip(LABELS, (prevalence(real_records) * 100).round(2), strict=True)) == NIH_PREVALENCE


@pytest.mark.shared_data
def test_real_subset_keeps_prevalence_within_one_point(nih_table, real_records):
    splits = read_chestxray(nih_table.parent, subset=0.2, check_images=False)
    kept = [r for v in splits.values() for r in v]
    deviation = np.abs(prevalence(kept) - prevalence(real_records)) * 100
    assert deviation.max() <= 1.0, dict(zip(LABELS, deviation.round(2), strict=True))
    # What the stratification buys: seeds 0-9 stay within 0.20 points (0.35 with thresholds
    # (1, 3, 10)); a random draw of 20 % of the patients is off by 0.4-1.2 (seed 0: 0.69), so a
    # plain random subset fails here.
    assert deviation.max() < 0.5
    assert len(patients(kept)) == round(0.2 * 30_805)
    assert 0.18 < len(kept) / len(real_records) < 0.22
    per_patient = Counter(r.patient_id for r in real_records)
    assert Counter(r.patient_id for r in kept) == {p: per_patient[p] for p in patients(kept)}
    check_leakage(splits)


@pytest.mark.shared_data
def test_generator_draws_real_rows(nih_table, real_records, tmp_path):
    generate_chestxray(tmp_path, 40, image_size=16, seed=0, source_table=nih_table)
    real = {r.image_path.name: r for r in real_records}
    drawn = [r for v in read_chestxray(tmp_path).values() for r in v]
    assert len(patients(drawn)) == 40
    for r in drawn:  # the row as it is in the real table, but for the image folder
        assert r == replace(real[r.image_path.name], image_path=r.image_path, where=r.where)
