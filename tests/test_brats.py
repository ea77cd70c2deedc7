"""pipeline.data.brats, pipeline.data.bags and pipeline.data.synth.brats: MIL bags from the BraTS 2019
layout (tiny synthetic volumes) and from the generic bag CSV, their cache, errors and test split."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import ConfigError, DataError
from pipeline.data import brats
from pipeline.data.bags import BagRecord, PngBagSet, load_png_bag, read_bag_csv, stratified_holdout
from pipeline.data.brats import BagSet, load_bag, read_brats, select_slices
from pipeline.data.synth.brats import generate_brats

MODS = ("flair", "t1", "t1ce", "t2")
TINY = (16, 16, 10)


@pytest.fixture
def nib():
    # nibabel is needed for the NIfTI side only; the CSV-bag tests run without it.
    return pytest.importorskip("nibabel", reason="nibabel is not installed (BraTS volumes need it)")


@pytest.fixture
def tiny(tmp_path, nib) -> Path:
    out = tmp_path / "brats"
    generate_brats(out, n_hgg=3, n_lgg=2, shape=TINY, seed=0)
    return out


def _volume(nib, path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


def _match(path: Path, what: str) -> str:
    return re.escape(str(path)) + ".*" + what


def test_read_and_load(tiny, nib):
    records = read_brats(tiny, ["t2", "flair"])
    assert [r.bag_id for r in records] == sorted(r.bag_id for r in records)
    assert Counter(r.label for r in records) == {"HGG": 3, "LGG": 2}
    first = records[0]
    assert [p.name for p in first.instances] == [f"{first.bag_id}_t2.nii.gz", f"{first.bag_id}_flair.nii.gz"]
    assert Path(first.where) == tiny / first.label / first.bag_id

    bag = load_bag(first, ["t2", "flair"], image_size=12)
    volumes = [_volume(nib, p) for p in first.instances]
    fraction = np.mean(np.any(np.stack(volumes) != 0, axis=0), axis=(0, 1))
    assert fraction.min() < 0.01  # the generator leaves empty end slices ...
    assert bag.shape == (int((fraction >= 0.01).sum()), 2, 12, 12) and bag.dtype == np.uint8
    assert bag.shape[0] < TINY[2]  # ... and load_bag drops them
    assert (bag[:, :, 0, 0] == 0).all() and bag.max() > 200  # background 0, brain spread over 1..255
    swapped = load_bag(read_brats(tiny, ["flair", "t2"])[0], ["flair", "t2"], image_size=12)
    np.testing.assert_array_equal(swapped, bag[:, ::-1])  # channels follow the configured order
    everything = load_bag(first, ["t2", "flair"], image_size=12, min_brain_fraction=0)
    assert everything.shape[0] == TINY[2] and not everything[0].any()


def test_slice_step_and_max_slices(tiny):
    record = read_brats(tiny, ["t1ce"])[0]
    full = load_bag(record, ["t1ce"], 8)
    n = full.shape[0]
    np.testing.assert_array_equal(load_bag(record, ["t1ce"], 8, slice_step=2), full[::2])
    picked = load_bag(record, ["t1ce"], 8, max_slices=3)
    np.testing.assert_array_equal(picked, full[[0, round((n - 1) / 2), n - 1]])
    assert load_bag(record, ["t1ce"], 8, max_slices=100).shape[0] == n
    fraction = np.array([0, 0.005, 0.2, 0.5, 0.6, 0.5, 0.3, 0.2, 0.01, 0])
    assert select_slices(fraction, 1, None, 0.01).tolist() == [2, 3, 4, 5, 6, 7, 8]
    assert select_slices(fraction, 3, None, 0.01).tolist() == [2, 5, 8]
    assert select_slices(fraction, 1, 2, 0.01).tolist() == [2, 8]


def test_generation_is_deterministic(tmp_path, nib):
    def files(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }

    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        generate_brats(tmp_path / name, n_hgg=2, n_lgg=1, shape=TINY, seed=seed)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert len(a) == 3 * 5 + 1 and a == b
    assert a != c
    mapping = (tmp_path / "a" / "name_mapping.csv").read_text().splitlines()
    assert (
        mapping[0]
        == "Grade,BraTS_2017_subject_ID,BraTS_2018_subject_ID,TCGA_TCIA_subject_ID,BraTS_2019_subject_ID"
    )
    assert re.fullmatch(r"(HGG|LGG),NA,NA,NA,BraTS19_SYN_0001_1", mapping[1])


def test_cli_and_stale_output(tmp_path, nib, capsys):
    from pipeline.data.synth import main

    out = tmp_path / "cli"
    assert main(["brats", "--out", str(out), "--hgg", "2", "--lgg", "1", "--shape", "16", "16", "10"]) == 0
    assert len(read_brats(out, MODS)) == 3
    assert main(["brats", "--out", str(out), "--hgg", "1", "--lgg", "1", "--shape", "16", "16", "10"]) == 2
    assert "expected an empty --out" in capsys.readouterr().err


def test_cache(tiny, kdsweep_cache, monkeypatch):
    records = read_brats(tiny, MODS)
    first = BagSet(records, MODS, image_size=8, max_slices=4)
    assert not first.cached and not list(kdsweep_cache.iterdir())  # nothing written before save()
    first.save()
    assert len(list(kdsweep_cache.glob("bag-*.npy"))) == len(records)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(brats, "load_bag", no_decoding)
    second = BagSet(records, MODS, image_size=8, max_slices=4)
    assert second.cached and second.files == first.files
    for x, y in zip(first.bags, second.bags, strict=True):
        np.testing.assert_array_equal(x, y)
    monkeypatch.undo()
    for changed in ({"image_size": 10, "max_slices": 4}, {"image_size": 8, "max_slices": 3}):
        other = BagSet(records, MODS, **changed)
        assert not other.cached and not set(other.files) & set(first.files)
    reordered = BagSet(records, ("t1", "flair", "t1ce", "t2"), image_size=8, max_slices=4)
    assert not reordered.cached


def _subject(root: Path, grade: str = "HGG") -> Path:
    return sorted((root / grade).iterdir())[0]


def test_volume_errors(tiny, nib):
    from pipeline.data.synth.brats import _write_nifti

    record = read_brats(tiny, MODS)[0]
    t1 = record.instances[1]
    data = t1.read_bytes()
    t1.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=_match(t1, "cannot read volume data.*expected a complete")):
        load_bag(record, MODS, 8)
    t1.write_bytes(b"not a nifti file")
    with pytest.raises(DataError, match=_match(t1, "cannot read NIfTI header.*expected a .nii")):
        load_bag(record, MODS, 8)
    t1.write_bytes(data)
    with pytest.raises(
        DataError, match=_match(Path(record.where), "no slice left.*expected at least one slice")
    ):
        load_bag(record, MODS, 8, min_brain_fraction=1.0)
    _write_nifti(record.instances[3], np.ones((16, 16, 9), dtype=np.int16))
    with pytest.raises(
        DataError, match=_match(Path(record.where), r"modalities differ in shape.*expected one shape")
    ):
        load_bag(record, MODS, 8)


def test_layout_errors(tiny, nib):
    subject = _subject(tiny)
    (subject / f"{subject.name}_flair.nii.gz").unlink()
    with pytest.raises(
        DataError, match=_match(subject, f"missing modality file {subject.name}_flair.nii.gz")
    ):
        read_brats(tiny, MODS)
    assert len(read_brats(tiny, ["t1", "t2"])) == 5  # only the configured modalities are required

    shutil.copytree(_subject(tiny, "LGG"), tiny / "HGG" / _subject(tiny, "LGG").name)
    with pytest.raises(DataError, match="is in both .*HGG.* and .*LGG.*expected one grade"):
        read_brats(tiny, ["t1"])
    shutil.rmtree(tiny / "HGG" / _subject(tiny, "LGG").name)

    mapping = tiny / "name_mapping.csv"
    text = mapping.read_text()
    lgg = _subject(tiny, "LGG").name
    mapping.write_text(text.replace(f"LGG,NA,NA,NA,{lgg}", f"HGG,NA,NA,NA,{lgg}"))
    with pytest.raises(DataError, match=_match(mapping, f"{lgg} is graded HGG but lies in .*LGG")):
        read_brats(tiny, ["t1"])
    mapping.unlink()  # name_mapping.csv is optional
    assert len(read_brats(tiny, ["t1"])) == 5

    for folder in list((tiny / "LGG").iterdir()):
        shutil.rmtree(folder)
    with pytest.raises(DataError, match=_match(tiny / "LGG", "empty grade folder.*expected")):
        read_brats(tiny, ["t1"])
    (tiny / "LGG").rmdir()
    with pytest.raises(DataError, match=_match(tiny / "LGG", "grade folder missing.*expected")):
        read_brats(tiny, ["t1"])
    with pytest.raises(ConfigError, match="unknown modality 't1c' .*closest: t1ce"):
        read_brats(tiny, ["t1c"])


def test_lesion_cue_in_a_fraction_of_slices(tmp_path, nib):
    out = tmp_path / "cue"
    generate_brats(out, n_hgg=4, n_lgg=3, seed=3)  # the default 40x40x24 volumes
    for record in read_brats(out, ["t1ce"]):
        t1ce = _volume(nib, record.instances[0])
        brain = t1ce != 0
        slices = np.flatnonzero(brain.mean(axis=(0, 1)) >= 0.01)
        # enhancement: a slice's brightest t1ce voxel at over twice the median brain intensity
        enhancing = np.array([t1ce[..., k].max() for k in slices]) > 2 * np.median(t1ce[brain])
        if record.label == "HGG":
            assert 0.1 <= enhancing.mean() <= 0.7, (record.bag_id, enhancing.mean())
        else:
            assert not enhancing.any(), record.bag_id


def _png_bags(root: Path, rows: list[str]) -> Path:
    for i, name in enumerate(["a/0.png", "a/1.png", "b/0.png", "c/0.png", "c/1.png", "c/2.png"]):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 10), 40 * i, dtype=np.uint8)).save(root / name)
    csv = root / "bags.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


ROWS = [
    "bag_id,label,instance_path",
    "c,x,c/2.png",
    "a,y,a/0.png",
    "c,x,c/0.png",
    "b,x,b/0.png",
    "a,y,a/1.png",
]


def test_bag_csv(tmp_path, kdsweep_cache):
    csv = _png_bags(tmp_path, ROWS)
    records = read_bag_csv(csv)
    assert [(r.bag_id, r.label, len(r.instances)) for r in records] == [
        ("a", "y", 2),
        ("b", "x", 1),
        ("c", "x", 2),
    ]
    assert [p.name for p in records[2].instances] == ["2.png", "0.png"]  # file order within a bag
    assert records[0].where == f"{csv}:3"
    bag = load_png_bag(records[2], image_size=8, channels=3)
    assert bag.shape == (2, 3, 8, 8) and bag.dtype == np.uint8
    assert bag[0, 0, 4, 4] == 200 and bag[0, 0, 4, 0] == 0  # letterboxed: 20x10 -> padded left/right
    first = PngBagSet(records, 8, 1)
    first.save()
    again = PngBagSet(records, 8, 1)
    assert not first.cached and again.cached and again.bags[2].shape == (2, 1, 8, 8)


@pytest.mark.parametrize(
    "rows, pattern",
    [
        (["bag_id,label,path", "a,y,a/0.png"], r":1: missing column\(s\) instance_path \(expected header"),
        (
            [*ROWS, "a,x,a/0.png"],
            r":7: bag 'a' has label 'x' but 'y' on line 3 \(expected one label per bag\)",
        ),
        (
            ["bag_id,label,instance_path", "a,y,a/0.png", "a,y,a/9.png"],
            r":3: instance file .*a/9.png not found \(expected",
        ),
        ([""], r":1: empty CSV \(expected header bag_id,label,instance_path\)"),
        (["bag_id,label,instance_path"], r":2: the CSV has a header but no rows"),
    ],
    ids=["missing-column", "two-labels", "missing-instance", "empty", "header-only"],
)
def test_bag_csv_errors(tmp_path, rows, pattern):
    csv = _png_bags(tmp_path, rows)
    with pytest.raises(DataError, match=re.escape(str(csv)) + pattern):
        read_bag_csv(csv)


def test_stratified_holdout():
    records = [BagRecord(f"s{i:02d}", "HGG" if i % 4 else "LGG", (), "") for i in range(38)]
    counts = Counter(r.label for r in records)
    train, test = stratified_holdout(records, 0.25, seed=0)
    assert {r.bag_id for r in train}.isdisjoint(r.bag_id for r in test)
    assert len(train) + len(test) == 38 and len(test) == round(0.25 * 38)
    for label, n in counts.items():
        assert abs(sum(r.label == label for r in test) - 0.25 * n) <= 1
    assert stratified_holdout(records[::-1], 0.25, seed=0) == (train, test)  # input order does not matter
    assert stratified_holdout(records, 0.25, seed=1)[1] != test
    with pytest.raises(DataError, match="appear twice"):
        stratified_holdout([*records, records[0]], 0.25, seed=0)
    with pytest.raises(DataError, match="test_fraction 0 is not between 0 and 1"):
        stratified_holdout(records, 0, seed=0)
