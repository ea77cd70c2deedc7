"""Read a dataset in the MedPix-2.0 on-disk format (or, through `table_sample`, any table of
images with labels and text: pipeline.data.csvtable) into validated records.

Format (CHILab1/MedPix-2.0, MedPix-2-0/), MedPix and synthetic-medpix::

    <root>/splitted_dataset/descriptions_{split}.jsonl   one image per line (a sample)
    <root>/splitted_dataset/data_{split}.jsonl           one clinical case per line (joined by U_id)
    <root>/images/<image>.png

Everything is checked before any work or any write: files, JSON lines, label fields, image
files, empty splits, and leakage (one case or image file in two splits). Each problem is a
one-line `DataError` naming the file and line. Decoding and tokenising live in
`pipeline.data.dataset`; `python -m pipeline.data describe <dataset> [--root DIR]` prints `describe`'s
summary (the CLI: pipeline/data/__main__.py).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from core.errors import DataError
from core.schema import DatasetConfig

# the record and the row -> Sample step every format shares (re-exported: callers import them here)
from pipeline.data.samples import SPLITS, Sample, check_root, get_path, table_sample  # noqa: F401


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    rows = []
    with path.open("rb") as f:  # decoded line by line: a bad byte is reported with its line
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{n}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: malformed JSON line ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            rows.append((n, row))
    return rows


def split_dir(cfg: DatasetConfig) -> Path:
    return check_root(cfg) / "splitted_dataset"


def read_split(cfg: DatasetConfig, split: str) -> list[Sample]:
    """The samples of one split (a key of cfg.splits), validated; `format: csv` reads its
    table through pipeline.data.csvtable, then the same `table_sample` as MedPix."""
    if cfg.format == "csv":
        from pipeline.data.csvtable import read_split as read_csv_split

        return read_csv_split(cfg, split)
    folder = split_dir(cfg)
    file = folder / f"descriptions_{cfg.splits[split]}.jsonl"
    rows = _read_jsonl(file)
    if not rows:
        raise DataError(f"{file}: split {split!r} is empty")
    cases: dict[str, dict] = {}
    if cfg.text.case_fields:
        case_file = folder / f"data_{cfg.splits[split]}.jsonl"
        cases = {str(row.get(cfg.case_id)): row for _, row in _read_jsonl(case_file)}
    images = Path(cfg.root) / "images"
    return [
        table_sample(cfg, row, f"{file}:{n}", images, cfg.image_field, cfg.image_ext, cfg.case_id, cases)
        for n, row in rows
    ]


def check_leakage(splits: dict[str, list[Sample]]) -> None:
    """The same case id or the same image file in two splits is an error naming both."""
    for what, key in (("case", lambda s: s.case_id), ("image file", lambda s: s.image_path.resolve())):
        seen: dict[Any, tuple[str, Sample]] = {}
        for name, samples in splits.items():
            for s in samples:
                k = key(s)
                if k in seen and seen[k][0] != name:
                    other = seen[k][1]
                    raise DataError(
                        f"leakage: {what} {k} is in split {seen[k][0]!r} ({other.where}) "
                        f"and split {name!r} ({s.where})"
                    )
                seen.setdefault(k, (name, s))


def read_dataset(cfg: DatasetConfig) -> dict[str, list[Sample]]:
    """train/dev/test samples, each split validated and checked for leakage."""
    splits = {name: read_split(cfg, name) for name in SPLITS}
    check_leakage(splits)
    return splits


def label_maps(train: list[Sample], tasks: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Per task, the sorted classes seen in train: class index = position."""
    return {t: tuple(sorted({s.labels[t] for s in train})) for t in tasks}


def drop_unseen(
    cfg: DatasetConfig, splits: dict[str, list[Sample]], maps: dict[str, tuple[str, ...]]
) -> dict[str, list[Sample]]:
    """Dev/test samples whose label is not in train: an error, or dropped (unseen_labels: drop)."""
    out = {}
    for name, samples in splits.items():
        seen = [all(s.labels[t] in maps[t] for t in maps) for s in samples]
        kept = [s for s, ok in zip(samples, seen, strict=True) if ok]
        if len(kept) < len(samples):
            bad = samples[seen.index(False)]
            task = next(t for t in maps if bad.labels[t] not in maps[t])
            if cfg.unseen_labels == "error":
                raise DataError(
                    f"{bad.where}: label {bad.labels[task]!r} of task {task!r} does not occur in "
                    f"the train split (set dataset.unseen_labels=drop to drop such samples)"
                )
            print(
                f"{cfg.name}/{name}: dropped {len(samples) - len(kept)} samples with labels unseen in train"
            )
            if not kept:
                raise DataError(f"{bad.where}: split {name!r} is empty after dropping unseen labels")
        out[name] = kept
    return out


def describe(cfg: DatasetConfig) -> str:
    """A plain-text summary: split sizes, cases, label counts per task, text lengths."""
    splits = read_dataset(cfg)
    maps = label_maps(splits["train"], tuple(cfg.tasks))
    lines = [f"dataset {cfg.name} at {cfg.root}"]
    for name, samples in splits.items():
        words = sorted(len(s.text.split()) for s in samples)
        lines.append(
            f"  {name:5s} {len(samples):6d} samples  {len({s.case_id for s in samples}):5d} cases  "
            f"text words median {words[len(words) // 2]}, max {words[-1]}"
        )
    for task, classes in maps.items():
        lines.append(f"  task {task} <- {cfg.tasks[task]} ({len(classes)} classes)")
        counts = {n: Counter(s.labels[task] for s in samples) for n, samples in splits.items()}
        width = max(5, *(len(c) for c in classes))
        lines.append(f"    {'class':{width}s} " + " ".join(f"{n:>6s}" for n in splits))
        for c in sorted({c for cnt in counts.values() for c in cnt}):
            lines.append(f"    {c:{width}s} " + " ".join(f"{counts[n][c]:6d}" for n in splits))
    return "\n".join(lines)
