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
from collections import Counter

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from core.errors import ConfigError
from core.schema import TokenizerConfig
from pipeline.data.images import cache_dir

SPECIAL = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
_MEMORY: dict[str, PreTrainedTokenizerBase] = {}


def _train_wordpiece(texts: list[str], cfg: TokenizerConfig) -> PreTrainedTokenizerFast:
    """A WordPiece vocabulary from the train split, deterministically: the special tokens, every
    character seen (word-initial and ``##`` continuation, so no word is ever [UNK]), then the
    most frequent whole words (ties by the word itself) up to `vocab_size`.

    Why not `trainers.WordPieceTrainer`: it breaks ties between equally frequent merges in hash
    order, so every training gave another vocabulary (checked: three runs, three vocabularies),
    and the same sweep on a fresh cache, or two trials training side by side, gave different
    numbers."""
    norm = [normalizers.NFD(), normalizers.StripAccents()]
    normalizer = normalizers.Sequence([*norm, normalizers.Lowercase()] if cfg.lowercase else norm)
    pre = pre_tokenizers.BertPreTokenizer()
    counts = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t)))
    chars = sorted({c for w in counts for c in w})
    fixed = [*SPECIAL.values(), *chars, *(f"##{c}" for c in chars)]
    room = max(cfg.vocab_size - len(fixed), 0)
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:room]
    vocab = {t: i for i, t in enumerate(dict.fromkeys([*fixed, *words]))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
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
    h = hashlib.sha256(f"wordpiece:v2:{cfg.vocab_size}:{cfg.lowercase}".encode())
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
