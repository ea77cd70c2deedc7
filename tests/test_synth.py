"""pipeline.data.synth: MedPix-2.0-format synthetic-medpix and Wound-1-0-format (CSV)
synthetic-wound, byte-identical per seed, real PNGs (and JPEGs for wound)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pipeline.config.loader import load_dataset_config
from pipeline.data.medpix import read_dataset
from pipeline.data.synth.medpix import KINDS
from pipeline.data.synth.wound import SEVERITY_COUNTS, TYPE_COUNTS, allocate

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synth_cli(kind: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.synth", kind, "--out", str(out), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def rows(root: Path, name: str) -> list[dict]:
    text = (root / "splitted_dataset" / f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def table(root: Path, name: str) -> list[dict]:
    with (root / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_layout_matches_medpix_format(synth_medpix):
    root, kind, mode = synth_medpix, "medpix", "L"
    spec = KINDS[kind]
    counts = {"train": 60, "dev": 20, "test": 20}
    for split, n in counts.items():
        descs, cases = rows(root, f"descriptions_{split}"), rows(root, f"data_{split}")
        assert len(descs) == n
        assert sorted(d["image"] for d in descs) == sorted(i for c in cases for i in c["Images"])
        for d in descs:
            assert d[spec.fields[0]] in spec.classes[0] and d[spec.fields[1]] in spec.classes[1]
            assert d["U_id"] and d["image"].startswith(d["U_id"])
            assert d["Description"]["Figure Part"] is None and d["Description"]["Caption"].strip()
            png = root / "images" / f"{d['image']}.png"
            assert png.read_bytes()[:8] == PNG_MAGIC
            with Image.open(png) as im:
                assert (im.format, im.mode, im.size) == ("PNG", mode, (32, 32))
        assert all(c["Case"]["History"] for c in cases)
    # train = train_1 + train_2, split by case as in MedPix-2.0
    halves = rows(root, "descriptions_train_1") + rows(root, "descriptions_train_2")
    assert sorted(d["image"] for d in halves) == sorted(d["image"] for d in rows(root, "descriptions_train"))
    uid_list = json.loads((root / "splitted_dataset" / "uid_list.json").read_text())
    assert set(uid_list) == set(counts)
    all_uids = [u for split in counts for u in uid_list[split]]
    assert len(all_uids) == len(set(all_uids))  # no case in two splits
    n_images = len(list((root / "images").glob("*.png")))
    assert n_images == sum(counts.values())


def test_wound_layout_is_the_groups(synth_wound):
    spec = KINDS["wound"]
    every = table(synth_wound, "metadata.csv")
    parts = {s: table(synth_wound, f"metadata_{s}.csv") for s in ("train", "dev", "test")}
    assert {s: len(r) for s, r in parts.items()} == {"train": 60, "dev": 20, "test": 20}
    assert [r for p in parts.values() for r in p] == every and list(every[0]) == [
        "img_path", "type", "severity", "description",
    ]  # fmt: skip
    for split, part in parts.items():  # the real shares per split, each class at least once
        want = allocate(len(part), TYPE_COUNTS[split])
        assert [sum(r["type"] == c for r in part) for c in spec.classes[0]] == want and min(want) >= 1
        want = allocate(len(part), SEVERITY_COUNTS[split])
        assert [sum(r["severity"] == c for r in part) for c in spec.classes[1]] == want
    for r in every:
        with Image.open(synth_wound / "images" / r["img_path"]) as im:
            fmt = {".png": "PNG", ".jpg": "JPEG"}[Path(r["img_path"]).suffix]
            assert (im.format, im.mode, im.size) == (fmt, "RGB", (32, 32))
    assert len(list((synth_wound / "images").iterdir())) == 100
    assert any(not r["description"] for r in every) and any("\u2013" in r["description"] for r in every)


def test_allocation_keeps_the_real_shares():
    assert allocate(1094, TYPE_COUNTS["train"]) == list(TYPE_COUNTS["train"])
    assert allocate(235, SEVERITY_COUNTS["dev"]) == list(SEVERITY_COUNTS["dev"])
    assert allocate(20, TYPE_COUNTS["dev"]) == [4, 4, 3, 3, 1, 1, 1, 1, 1, 1]
    assert allocate(3, (5, 1)) == [2, 1]
    assert allocate(1, (5, 1)) == [1, 0]  # no room for every class


def test_the_reader_loads_what_the_generator_writes(synth_medpix):
    splits = read_dataset(load_dataset_config("synthetic-medpix", [f"root={synth_medpix}"]))
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "dev": 20, "test": 20}
    first = rows(synth_medpix, "descriptions_train")[0]
    history = rows(synth_medpix, "data_train")[0]["Case"]["History"]
    s = splits["train"][0]
    assert s.case_id == first["U_id"] and s.image_path.name == first["image"] + ".png"
    assert s.labels == {"modality": first["Type"], "location": first["Location Category"]}
    assert s.text == f"{first['Description']['Caption']} {history}"


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    args = ["--n-train", "12", "--n-dev", "5", "--n-test", "5", "--image-size", "24"]
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        proc = synth_cli("medpix", tmp_path / name, *args, "--seed", seed)
        assert proc.returncode == 0, proc.stderr
        assert "wrote medpix (12/5/5" in proc.stdout
    a, b, c = (files(tmp_path / n) for n in "abc")
    assert len(a) == 22 + 11  # 22 PNGs, 10 jsonl files, uid_list.json
    assert a == b
    assert a["splitted_dataset/descriptions_train.jsonl"] != c["splitted_dataset/descriptions_train.jsonl"]
    pngs = lambda d: {v for k, v in d.items() if k.endswith(".png")}  # noqa: E731
    assert len(pngs(c)) == 22 and not pngs(a) & pngs(c)  # different pixels everywhere


@pytest.mark.parametrize(
    "args, expected",
    [(["--n-train", "0"], "--n-train must be > 0"), (["--image-size", "-4"], "--image-size must be > 0")],
)
def test_cli_rejects_non_positive_sizes(tmp_path, args, expected):
    proc = synth_cli("wound", tmp_path / "out", *args)
    assert proc.returncode == 2 and expected in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_rejects_unknown_kind(tmp_path):
    proc = synth_cli("xray", tmp_path / "out")
    assert proc.returncode == 2 and "invalid choice: 'xray'" in proc.stderr
