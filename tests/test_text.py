"""pipeline.data.text: a WordPiece tokenizer trained on train text (cached) and local HF folders offline."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from core.errors import ConfigError
from core.schema import TokenizerConfig
from pipeline.config.loader import load_dataset_config
from pipeline.data import text
from pipeline.data.dataset import load_data
from pipeline.data.medpix import read_dataset

TEXTS = [
    "Axial CT of the head shows a hyperdense mass in the left frontal lobe.",
    "T2 weighted MRI sequence of the lumbar spine \u2013 disc herniation at L4-L5.",
    "Chest radiograph: bilateral lower lobe consolidation, no pleural effusion.",
    "Follow-up study. Findings discussed with the team.",
] * 3
LONG = " ".join(["the mass in the left frontal lobe"] * 20)


def words(s: str) -> list[str]:
    return re.findall(r"\w+", s.lower())


def round_trip(tok, texts: list[str], max_length: int = 64) -> list[str]:
    ids, _ = text.encode(tok, texts, max_length)
    return [tok.decode(row, skip_special_tokens=True) for row in ids]


@pytest.fixture
def wordpiece():
    return text.load_tokenizer(TokenizerConfig(name="wordpiece", vocab_size=300, max_length=32), TEXTS)


def test_wordpiece_round_trip_gives_lowercased_words(wordpiece):
    for original, decoded in zip(TEXTS, round_trip(wordpiece, TEXTS), strict=True):
        assert words(decoded) == words(original), (original, decoded)
        assert decoded == decoded.lower()
    ids, mask = text.encode(wordpiece, TEXTS[:1], 64)
    assert ids[0, 0] == wordpiece.cls_token_id and ids[0, int(mask[0].sum()) - 1] == wordpiece.sep_token_id
    assert wordpiece.unk_token_id not in ids[0]


def test_wordpiece_lowercase_false_keeps_case():
    tok = text.load_tokenizer(TokenizerConfig(vocab_size=300, lowercase=False), TEXTS)
    decoded = round_trip(tok, TEXTS[:1])[0]
    assert re.findall(r"\w+", decoded) == re.findall(r"\w+", TEXTS[0]) and "CT" in decoded


def test_wordpiece_is_cached_by_content_hash(kdsweep_cache, wordpiece):
    folders = sorted(kdsweep_cache.glob("wordpiece-*"))
    assert len(folders) == 1 and (folders[0] / "tokenizer.json").is_file()
    cfg = TokenizerConfig(name="wordpiece", vocab_size=300, max_length=32)
    assert text.load_tokenizer(cfg, TEXTS) is wordpiece  # in memory
    text._MEMORY.clear()
    again = text.load_tokenizer(cfg, TEXTS)  # from the folder, not retrained
    assert again is not wordpiece and again.name_or_path == str(folders[0])
    assert again.get_vocab() == wordpiece.get_vocab()
    np.testing.assert_array_equal(text.encode(again, TEXTS, 32)[0], text.encode(wordpiece, TEXTS, 32)[0])
    text.load_tokenizer(cfg, TEXTS[:2])  # other text -> another vocabulary
    text.load_tokenizer(TokenizerConfig(vocab_size=250), TEXTS)  # other settings -> another one
    assert len(list(kdsweep_cache.glob("wordpiece-*"))) == 3
    assert not list(kdsweep_cache.glob("*.tmp"))


def test_local_minilm_folder_loads_offline(minilm_dir):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    tok = text.load_tokenizer(TokenizerConfig(name=str(minilm_dir), max_length=64), [])
    assert tok.vocab_size == 30522 and tok.cls_token_id == 101 and tok.sep_token_id == 102
    for original, decoded in zip(TEXTS, round_trip(tok, TEXTS), strict=True):
        assert words(decoded) == words(original), (original, decoded)


@pytest.mark.parametrize("kind", ["wordpiece", "minilm"])
def test_truncation_and_padding(request, kind):
    if kind == "wordpiece":
        tok = request.getfixturevalue("wordpiece")
    else:
        tok = text.load_tokenizer(TokenizerConfig(name=str(request.getfixturevalue("minilm_dir"))), [])
    ids, mask = text.encode(tok, [LONG, "mass"], 8)
    assert ids.shape == mask.shape == (2, 8) and ids.dtype == mask.dtype == np.int64
    assert mask[0].tolist() == [1] * 8 and ids[0, 0] == tok.cls_token_id and ids[0, -1] == tok.sep_token_id
    assert words(tok.decode(ids[0], skip_special_tokens=True)) == words(LONG)[:6]
    n = int(mask[1].sum())
    assert n == 3 and (ids[1, n:] == tok.pad_token_id).all() and (mask[1, n:] == 0).all()


def test_unknown_tokenizer_fails_before_anything_is_written(synth_wound, kdsweep_cache, tmp_path):
    cfg = load_dataset_config("synthetic-wound", [f"root={synth_wound}"])
    for name in ("no-such-org/no-such-model", str(tmp_path / "missing-folder")):
        toks = {"teacher": TokenizerConfig(name=name), "student": TokenizerConfig(name="wordpiece")}
        with pytest.raises(ConfigError) as info:
            load_data(cfg, 32, toks)
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith("teacher.text.tokenizer.name: cannot load tokenizer")
        assert repr(name) in msg
        assert list(kdsweep_cache.iterdir()) == []


def test_samples_carry_both_tokenizations(synth_wound, minilm_dir):
    cfg = load_dataset_config("synthetic-wound", [f"root={synth_wound}"])
    toks = {
        "teacher": TokenizerConfig(name=str(minilm_dir), max_length=40),
        "student": TokenizerConfig(name="wordpiece", vocab_size=400, max_length=24),
    }
    bundle = load_data(cfg, 32, toks)
    teacher, student = bundle.tokenizers["teacher"], bundle.tokenizers["student"]
    assert teacher.cls_token_id == 101 and student.cls_token_id == 2  # MiniLM vocab vs trained WordPiece
    samples = read_dataset(cfg)["dev"]
    for i in range(len(samples)):
        item = bundle.splits["dev"][i]
        expected = words(samples[i].text)
        assert item["input_ids_teacher"].shape == item["attention_mask_teacher"].shape
        assert item["input_ids_teacher"].shape[0] <= 40 and item["input_ids_student"].shape[0] <= 24
        t = words(teacher.decode(item["input_ids_teacher"], skip_special_tokens=True))
        s = words(student.decode(item["input_ids_student"], skip_special_tokens=True))
        assert t == expected[: len(t)] and len(t) >= min(len(expected), 20)
        assert s == expected[: len(s)] and len(s) >= min(len(expected), 10)
