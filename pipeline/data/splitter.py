"""`python -m pipeline.data split <dataset>`: the research group's train/dev/test split of a
`format: csv` dataset, so a folder that has only metadata.csv (or a new table) gets the split
files their code would write.

Their split, reproduced call for call: scikit-learn `train_test_split` of every row of
metadata.csv, `random_state=42`, stratified by `type`: 70 % train; then the other 30 %
halved, again stratified, into dev (the first part) and test. Rows keep every column and the
order the splits draw them in. Fractions, seed and column are options (defaults theirs); split
files that exist are never overwritten without `force`, since a changed split silently
changes every number after it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from core.errors import ConfigError, DataError
from core.schema import DatasetConfig
from pipeline.data.csvtable import read_table, require_columns, write_table
from pipeline.data.medpix import SPLITS, check_root

DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
DEFAULT_SEED = 42


def split_rows(labels: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, list[int]]:
    """Row indices per split: train vs the rest, then the rest into dev and test, each draw
    stratified by `labels` with `random_state=seed` (the group's two train_test_split calls)."""
    from sklearn.model_selection import train_test_split  # scikit-learn: only splitting needs it

    train_f, dev_f, test_f = fractions
    if min(fractions) <= 0 or abs(train_f + dev_f + test_f - 1) > 1e-9:
        raise ConfigError(f"--fractions: expected three values > 0 summing to 1, got {list(fractions)}")
    rest_f = dev_f + test_f
    index = list(range(len(labels)))
    try:
        train, rest = train_test_split(index, test_size=rest_f, stratify=labels, random_state=seed)
        dev, test = train_test_split(
            rest, test_size=test_f / rest_f, stratify=[labels[i] for i in rest], random_state=seed
        )
    except ValueError as e:  # e.g. a class with a single row cannot be stratified
        raise DataError(f"cannot stratify {len(labels)} rows into {list(fractions)}: {e}") from None
    return {"train": train, "dev": dev, "test": test}


def split_table(
    cfg: DatasetConfig,
    by: str | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = DEFAULT_SEED,
    force: bool = False,
) -> str:
    """Write the split tables of `cfg` (table.files) from its whole table (table.table),
    stratified by column `by` (default: the first task's column); the per-split label counts
    of every task column, as text. Nothing is written when any check fails."""
    if cfg.format != "csv":
        raise ConfigError(f"dataset {cfg.name!r} is format {cfg.format}; only format csv is split here")
    root = check_root(cfg)
    source = root / cfg.table.table
    header, rows = read_table(source)
    by = by or next(iter(cfg.tasks.values()))
    columns = {c: f"dataset.tasks.{t}" for t, c in cfg.tasks.items()}
    require_columns(source, header, {by: "--by: the column to stratify by", **columns})
    for n, row in rows:
        if not row[by].strip():
            raise DataError(f"{source}:{n}: empty value in column {by!r} (the split is stratified by it)")
    outputs = {s: root / cfg.table.files.format(split=cfg.splits[s]) for s in SPLITS}
    existing = [str(p) for p in outputs.values() if p.exists()]
    if existing and not force:
        raise DataError(
            f"{existing[0]}: split file exists; pass --force to overwrite ({len(existing)} of 3 exist)"
        )
    parts = split_rows([row[by].strip() for _, row in rows], fractions, seed)
    for s, path in outputs.items():
        write_table(path, header, [[rows[i][1][h] for h in header] for i in parts[s]])
    return summary(source, {s: [rows[i][1] for i in parts[s]] for s in SPLITS}, [by, *columns], outputs)


def summary(source: Path, splits: dict[str, list[dict[str, str]]], columns: list[str], outputs: dict) -> str:
    """Rows per split and, per column, each label's count per split."""
    lines = [f"split {source} ({sum(map(len, splits.values()))} rows):"]
    lines += [f"  {s:5s} {len(rows):6d} rows -> {outputs[s]}" for s, rows in splits.items()]
    for column in dict.fromkeys(columns):
        counts = {s: Counter(r[column].strip() for r in rows) for s, rows in splits.items()}
        labels = sorted({c for cnt in counts.values() for c in cnt})
        width = max(5, *(len(c) for c in labels))
        lines.append(f"  column {column} ({len(labels)} labels)")
        lines.append(f"    {'label':{width}s} " + " ".join(f"{s:>6s}" for s in splits))
        for c in labels:
            lines.append(f"    {c:{width}s} " + " ".join(f"{counts[s][c]:6d}" for s in splits))
    return "\n".join(lines)
