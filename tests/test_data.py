"""pipeline.data.medpix / images / dataset: MedPix-2.0 reader, one-line data errors, caches, batch contract.

The MedPix-format tests run on synthetic-medpix; the CSV layout (synthetic-wound) has tests/test_csv_data.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import DataError
from core.schema import TokenizerConfig
from pipeline.config.loader import load_dataset_config
from pipeline.data import images
from pipeline.data.dataset import load_data
from pipeline.data.medpix import SPLITS, read_dataset

REPO = Path(__file__).resolve().parents[1]
TOKS = {"teacher": TokenizerConfig(vocab_size=300, max_length=64), "student": TokenizerConfig(max_length=12)}
DATASETS = ", ".join(
    sorted(p.stem for p in (Path(__file__).parents[1] / "sweeps" / "datasets").glob("*.yaml"))
)
KEYS = {"image", "index", "labels", *(f"{k}_{r}" for k in ("input_ids", "attention_mask") for r in TOKS)}


def dataset(root: Path, *overrides: str, name: str = "synthetic-medpix"):
    return load_dataset_config(name, [f"root={root}", *overrides])


def copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "ds"))


def jsonl(root: Path, name: str) -> Path:
    return root / "splitted_dataset" / f"{name}.jsonl"


def edit(root: Path, name: str, line: int, change) -> dict:
    """Apply `change` to the JSON object on `line` (1-based) of splitted_dataset/<name>.jsonl."""
    rows = [json.loads(t) for t in jsonl(root, name).read_text(encoding="utf-8").splitlines()]
    change(rows[line - 1])
    jsonl(root, name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows[line - 1]


def image_of(root: Path, name: str, line: int) -> Path:
    return root / "images" / (edit(root, name, line, lambda r: None)["image"] + ".png")


def replace_line(root: Path, name: str, line: int, text: str) -> None:
    lines = jsonl(root, name).read_text(encoding="utf-8").splitlines()
    lines[line - 1] = text
    jsonl(root, name).write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- reading
def test_one_sample_per_description_line_with_case_text(synth_medpix):
    splits = read_dataset(dataset(synth_medpix))
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "dev": 20, "test": 20}
    row = edit(synth_medpix, "descriptions_dev", 3, lambda r: None)
    case = next(
        c for c in map(json.loads, jsonl(synth_medpix, "data_dev").open()) if c["U_id"] == row["U_id"]
    )
    s = splits["dev"][2]
    assert s.labels == {"modality": row["Type"], "location": row["Location Category"]}
    assert s.case_id == row["U_id"]
    assert s.text == f"{row['Description']['Caption']} {case['Case']['History']}"
    assert s.where == f"{jsonl(synth_medpix, 'descriptions_dev')}:3"
    only_caption = read_dataset(dataset(synth_medpix, "text.case_fields=[]"))["dev"][2]
    assert only_caption.text == row["Description"]["Caption"]


def test_label_fields_are_configurable(synth_medpix):
    cfg = dataset(synth_medpix, "tasks={sex: Description.Sex, plane: Description.Plane}")
    train = read_dataset(cfg)["train"]
    assert {s.labels["sex"] for s in train} == {"female", "male"}
    assert {s.labels["plane"] for s in train} == {"Axial"}


def test_null_figure_part_and_unicode_caption(synth_medpix, tmp_path):
    root = copy(synth_medpix, tmp_path)
    caption = "L\u00e9sion h\u00e9patique \u2013 \u809d\u81d3 \u2713 (r\u00e9sum\u00e9)"
    edit(root, "descriptions_train", 1, lambda r: r["Description"].update(Caption=caption))
    cfg = dataset(root, "text.fields=[Description.Caption, Description.Figure Part]", "text.case_fields=[]")
    bundle = load_data(cfg, 32, TOKS)
    assert read_dataset(cfg)["train"][0].text == caption  # the null Figure Part adds nothing
    words = bundle.tokenizers["teacher"].decode(bundle.splits["train"][0]["input_ids_teacher"])
    assert "lesion hepatique" in words and "resume" in words


# --------------------------------------------------------------------------- labels and leakage
def test_label_maps_come_from_train(synth_medpix):
    bundle = load_data(dataset(synth_medpix), 32, TOKS)
    assert bundle.label_maps == {
        "modality": ("CT", "MR"),
        "location": ("Abdomen", "Head", "Reproductive and Urinary System", "Spine and Muscles", "Thorax"),
    }
    assert bundle.num_classes() == {"modality": 2, "location": 5}


def test_unseen_labels_can_be_dropped(synth_medpix, tmp_path, capsys):
    root = copy(synth_medpix, tmp_path)
    edit(root, "descriptions_dev", 4, lambda r: r.update(Type="frostbite"))
    bundle = load_data(dataset(root, "unseen_labels=drop"), 32, TOKS)
    assert "synthetic-medpix/dev: dropped 1 samples" in capsys.readouterr().out
    assert len(bundle.splits["dev"]) == 19 and len(bundle.splits["test"]) == 20


# --------------------------------------------------------------------------- bad input
BAD = {}  # problem -> function(root) that breaks the copy at `root` and returns expected message parts


def bad(name: str):
    return lambda fn: BAD.setdefault(name, fn)


def _set(**values):
    return lambda row: row.update(values)


def _pop(key: str):
    return lambda row: row.pop(key)


@bad("missing root")
def _(root):
    shutil.rmtree(root)
    return ["dataset 'synthetic-medpix'", f"root {root} not found"]


@bad("missing split file")
def _(root):
    jsonl(root, "descriptions_dev").unlink()
    return [f"{jsonl(root, 'descriptions_dev')}: split file not found"]


@bad("missing case file")
def _(root):
    jsonl(root, "data_test").unlink()
    return [f"{jsonl(root, 'data_test')}: split file not found"]


@bad("malformed JSON")
def _(root):
    replace_line(root, "descriptions_train", 3, '{"Type": "CT",')
    return [f"{jsonl(root, 'descriptions_train')}:3: malformed JSON line"]


@bad("not UTF-8")
def _(root):
    path = jsonl(root, "descriptions_train")
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b'"', b'"\xe9', 1)  # a Latin-1 byte inside a JSON string
    path.write_bytes(b"\n".join(lines))
    return [f"{path}:4: not UTF-8 text (byte 0xe9"]


@bad("not an object")
def _(root):
    replace_line(root, "descriptions_dev", 2, "[1, 2]")
    return [f"{jsonl(root, 'descriptions_dev')}:2: expected a JSON object, got list"]


@bad("missing image file")
def _(root):
    (path := image_of(root, "descriptions_dev", 2)).unlink()
    return [f"{jsonl(root, 'descriptions_dev')}:2: image file not found: {path}"]


@bad("undecodable image")
def _(root):
    (path := image_of(root, "descriptions_test", 4)).write_bytes(b"garbage\0" * 9)
    return [f"{path}: cannot decode image"]


@bad("truncated image")
def _(root):
    (path := image_of(root, "descriptions_train", 7)).write_bytes(path.read_bytes()[:80])
    return [f"{path}: cannot decode image"]


@bad("missing image field")
def _(root):
    edit(root, "descriptions_dev", 6, _pop("image"))
    return [f"{jsonl(root, 'descriptions_dev')}:6: missing image field 'image'"]


@bad("missing label field")
def _(root):
    edit(root, "descriptions_train", 5, _pop("Location Category"))
    return [
        f"{jsonl(root, 'descriptions_train')}:5: missing label field 'Location Category' (task 'location')"
    ]


@bad("blank label")
def _(root):
    edit(root, "descriptions_dev", 1, _set(Type=" "))
    return [f"{jsonl(root, 'descriptions_dev')}:1: missing label field 'Type' (task 'modality')"]


@bad("empty split")
def _(root):
    jsonl(root, "descriptions_test").write_text("\n\n")
    return [f"{jsonl(root, 'descriptions_test')}: split 'test' is empty"]


@bad("unseen label")
def _(root):
    edit(root, "descriptions_dev", 4, _set(Type="frostbite"))
    return [
        f"{jsonl(root, 'descriptions_dev')}:4: label 'frostbite' of task 'modality'",
        "unseen_labels=drop",
    ]


@bad("case in two splits")
def _(root):
    uid = edit(root, "descriptions_train", 1, lambda r: None)["U_id"]
    edit(root, "descriptions_dev", 1, _set(U_id=uid))
    where = f"({jsonl(root, 'descriptions_train')}:1) and split 'dev' ({jsonl(root, 'descriptions_dev')}:1)"
    return [f"leakage: case {uid} is in split 'train' {where}"]


@bad("image in two splits")
def _(root):
    path = image_of(root, "descriptions_train", 2)
    edit(root, "descriptions_test", 5, _set(image=path.stem))
    return ["leakage: image file", f"{path.name} is in split 'train'", "descriptions_test.jsonl:5"]


@pytest.mark.parametrize("problem", list(BAD))
def test_bad_data_is_one_line_error_and_writes_nothing(problem, synth_medpix, tmp_path, kdsweep_cache):
    root = copy(synth_medpix, tmp_path)
    expected = BAD[problem](root)
    assert expected
    with pytest.raises(DataError) as info:
        load_data(dataset(root), 32, TOKS)
    msg = str(info.value)
    assert "\n" not in msg
    for part in expected:
        assert part in msg, (part, msg)
    assert list(kdsweep_cache.iterdir()) == []


def describe(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.data", "describe", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


CLI_CONFIG = {  # problem -> (dataset name, extra arguments, expected message)
    "unknown dataset": ("mnist", [], f"command line: dataset: unknown dataset 'mnist' (valid: {DATASETS})"),
    "unknown key": (
        "synthetic-medpix",
        ["chanels=3"],
        "override 'chanels=3': chanels: unknown key (closest: channels)",
    ),
    "wrong type": ("synthetic-medpix", ["channels=rgb"], "channels: expected one of 1, 3, got 'rgb'"),
}
CLI_DATA = [
    "missing root",
    "missing split file",
    "malformed JSON",
    "not UTF-8",
    "missing image file",
    "missing label field",
]


@pytest.mark.parametrize("problem", CLI_DATA + list(CLI_CONFIG))
def test_describe_cli_errors(problem, synth_medpix, tmp_path, kdsweep_cache):
    root = copy(synth_medpix, tmp_path)
    name, extra, expected = CLI_CONFIG.get(problem) or ("synthetic-medpix", [], BAD[problem](root)[0])
    proc = describe(name, "--root", str(root), *extra)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr  # one line
    assert expected in proc.stderr, proc.stderr
    assert list(kdsweep_cache.iterdir()) == []


def test_describe_cli_summary(synth_medpix):
    proc = describe("synthetic-medpix", "--root", str(synth_medpix))
    assert proc.returncode == 0, proc.stderr
    assert "train     60 samples" in proc.stdout and "test      20 samples" in proc.stdout
    assert (
        "task modality <- Type (2 classes)" in proc.stdout
        and "task location <- Location Category (5 classes)" in proc.stdout
    )


# --------------------------------------------------------------------------- image cache
def test_images_are_decoded_once_and_cached_by_content(synth_medpix, tmp_path, kdsweep_cache, monkeypatch):
    cfg = dataset(synth_medpix)
    first = load_data(cfg, 32, TOKS)
    npys = sorted(kdsweep_cache.glob("images-*.npy"))
    assert len(npys) == 3
    png = read_dataset(cfg)["train"][0].image_path
    expected = np.asarray(Image.open(png).convert("L"))[None]
    np.testing.assert_array_equal(first.splits["train"].t["image"][0].numpy(), expected)

    real_decode = images.decode

    def no_decode(*args):
        raise AssertionError("a PNG was decoded again")

    monkeypatch.setattr(images, "decode", no_decode)
    images._MEMORY.clear()
    second = load_data(cfg, 32, TOKS)  # from the .npy files
    for split in SPLITS:
        assert torch.equal(second.splits[split].t["image"], first.splits[split].t["image"])
    for f in npys:
        f.unlink()
    third = load_data(cfg, 32, TOKS)  # from memory
    assert third.splits["dev"].t["image"].data_ptr() == second.splits["dev"].t["image"].data_ptr()
    load_data(cfg, 32, TOKS)
    assert sorted(kdsweep_cache.glob("images-*.npy")) == npys  # memory hits write the cache back
    images._MEMORY.clear()
    load_data(dataset(copy(synth_medpix, tmp_path)), 32, TOKS)  # same bytes elsewhere: same cache
    root = tmp_path / "ds"
    Image.new("L", (32, 32), 9).save(image_of(root, "descriptions_dev", 1))
    with pytest.raises(AssertionError, match="decoded again"):  # changed bytes: a new key
        load_data(dataset(root), 32, TOKS)
    monkeypatch.setattr(images, "decode", real_decode)
    load_data(dataset(root), 32, TOKS)
    assert len(list(kdsweep_cache.glob("images-*.npy"))) == 4 and not list(kdsweep_cache.glob("*.tmp"))


# --------------------------------------------------------------------------- batch contract
@pytest.mark.parametrize("kind, channels", [("wound", 3), ("medpix", 1)])
def test_loader_batch_contract(request, kind, channels):
    cfg = dataset(request.getfixturevalue(f"synth_{kind}"), name=f"synthetic-{kind}")
    bundle = load_data(cfg, 32, TOKS)
    samples = read_dataset(cfg)  # either format: format csv reads through the same reader
    for split, shuffle in (("train", True), ("dev", False)):
        seen, trimmed = [], []
        for batch in bundle.loader(split, 7, shuffle=shuffle, seed=1):
            assert set(batch) == KEYS
            b = len(batch["index"])
            assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (b, channels, 32, 32)
            assert batch["index"].dtype == torch.int64 and batch["index"].shape == (b,)
            for role, tok in TOKS.items():
                ids, mask = batch[f"input_ids_{role}"], batch[f"attention_mask_{role}"]
                assert ids.dtype == mask.dtype == torch.int64 and ids.shape == mask.shape
                assert ids.shape[0] == b and ids.shape[1] == int(mask.sum(1).max()) <= tok.max_length
                assert (ids[mask == 0] == bundle.tokenizers[role].pad_token_id).all()
                trimmed.append(ids.shape[1] < tok.max_length)
            index = batch["index"].tolist()
            assert torch.equal(batch["image"], bundle.splits[split].t["image"][index])
            assert set(batch["labels"]) == set(cfg.tasks)
            for task, y in batch["labels"].items():
                assert y.dtype == torch.int64 and y.shape == (b,)
                raw = [bundle.label_maps[task][int(c)] for c in y]
                assert raw == [samples[split][i].labels[task] for i in index]
            seen += index
        n = len(samples[split])
        assert sorted(seen) == list(range(n)) and (seen != sorted(seen)) == shuffle
        assert any(trimmed) and not all(trimmed)  # teacher trimmed below 64; student always at 12
    order = [b["index"].tolist() for b in bundle.loader("train", 7, shuffle=True, seed=1)]
    assert order == [b["index"].tolist() for b in bundle.loader("train", 7, shuffle=True, seed=1)]
    assert order != [b["index"].tolist() for b in bundle.loader("train", 7, shuffle=True, seed=2)]


# --------------------------------------------------------------------------- the real MedPix sample
@pytest.mark.shared_data
def test_real_medpix_sample(shared_medpix):
    cfg = load_dataset_config("medpix", [f"root={shared_medpix}"])
    splits = read_dataset(cfg)
    assert {k: len(v) for k, v in splits.items()} == {"train": 1653, "dev": 197, "test": 200}
    assert Counter(s.labels["modality"] for s in splits["train"]) == {"CT": 878, "MR": 775}
    assert {s.labels["location"] for s in splits["train"]} == {
        "Head", "Thorax", "Abdomen", "Spine and Muscles", "Reproductive and Urinary System",
    }  # fmt: skip
    assert any("\u2019" in s.text for s in splits["train"])  # unicode captions survive
    proc = describe("medpix", "--root", str(shared_medpix))
    assert proc.returncode == 0 and "train   1653 samples" in proc.stdout, proc.stderr


@pytest.mark.shared_data
def test_real_medpix_loads_into_batches(shared_medpix):
    cfg = load_dataset_config("medpix", [f"root={shared_medpix}", "text.case_fields=[Case.History]"])
    bundle = load_data(cfg, 32, TOKS)
    assert bundle.num_classes() == {"modality": 2, "location": 5}
    batch = next(iter(bundle.loader("test", 16)))
    assert batch["image"].shape == (16, 1, 32, 32) and set(batch) == KEYS
    # images keep their aspect ratio (letterboxed): a wide scan leaves black rows at the top
    wide = next(i for i, s in enumerate(read_dataset(cfg)["test"]) if Image.open(s.image_path).size[1] < 110)
    assert bundle.splits["test"].t["image"][wide, 0, 0].max() == 0
