"""Tokenizers: teacher and student each have one, and every sample carries ids for both.

`name: wordpiece` trains a BERT-style WordPiece vocabulary on the train split's text, offline,
cached by a hash of that text and the settings (so every trial of a sweep shares it). Any other
name goes to `AutoTokenizer.from_pretrained` (a hub id, or a local folder that works with
HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import hashlib
import os
import shutil

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from pipeline.errors import ConfigError
from pipeline.images import cache_dir
from pipeline.schema import TokenizerConfig

SPECIAL = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
_MEMORY: dict[str, PreTrainedTokenizerBase] = {}


def _train_wordpiece(texts: list[str], cfg: TokenizerConfig) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    norm = [normalizers.NFD(), normalizers.StripAccents()]
    tok.normalizer = normalizers.Sequence([*norm, normalizers.Lowercase()] if cfg.lowercase else norm)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=cfg.vocab_size, special_tokens=list(SPECIAL.values()), show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=cfg.max_length, **SPECIAL)


def load_tokenizer(
    cfg: TokenizerConfig, train_texts: list[str], key: str = "tokenizer"
) -> PreTrainedTokenizerBase:
    """The tokenizer for `cfg`; trains (or loads the cached) WordPiece for name=wordpiece."""
    if cfg.name != "wordpiece":
        if cfg.name not in _MEMORY:
            try:
                _MEMORY[cfg.name] = AutoTokenizer.from_pretrained(cfg.name)
            except (OSError, ValueError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(f"{key}.name: cannot load tokenizer {cfg.name!r} ({first})") from None
        return _MEMORY[cfg.name]
    h = hashlib.sha256(f"wordpiece:v1:{cfg.vocab_size}:{cfg.lowercase}".encode())
    for t in train_texts:
        h.update(t.encode("utf-8") + b"\0")
    digest = h.hexdigest()[:24]
    if digest in _MEMORY:
        return _MEMORY[digest]
    folder = cache_dir() / f"wordpiece-{digest}"
    if folder.is_dir():
        tok = AutoTokenizer.from_pretrained(folder)
    else:
        tok = _train_wordpiece(train_texts, cfg)
        tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, folder)  # atomic; a parallel trial may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    _MEMORY[digest] = tok
    return tok


def encode(tok: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """input_ids and attention_mask, int64 [N, max_length], truncated and padded."""
    enc = tok(texts, max_length=max_length, truncation=True, padding="max_length", return_tensors="np")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
