"""`format: csv`: a folder of images and CSV tables, one row per image (the research group's
Wound-1-0 layout, and the synthetic-wound set written in it)::

    <root>/images/<img_path>          one flat folder; the value carries the extension
    <root>/metadata.csv               every row (what `python -m pipeline.data split` splits)
    <root>/metadata_{train,dev,test}.csv

File, folder and column names come from the dataset's `table` section, `tasks` (task -> label
column) and `text.fields` (text columns). Rows become samples through the same
`pipeline.data.samples.table_sample` as MedPix lines, so both formats are checked alike. The
tables are read as spreadsheets and pandas write them: a UTF-8 byte-order mark, quoted fields
(commas, quotes and line breaks inside) and Windows line ends are all read correctly; a
problem is one `DataError` naming file:line (the line a row starts on) and column.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.errors import DataError
from core.schema import DatasetConfig
from pipeline.data.samples import Sample, check_root, table_sample


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the rows of a CSV file, each row with the line it starts on (blank lines
    skipped). Every row must have the header's number of fields."""
    if not path.is_file():
        raise DataError(f"{path}: table not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (Excel's "CSV UTF-8") is dropped
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        if not any(header):
            raise DataError(f"{path}:1: no header row (expected column names)")
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise DataError(f"{path}:1: column {dupes[0]!r} appears twice in the header")
        rows, end = [], reader.line_num
        for fields in reader:
            start, end = end + 1, reader.line_num
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                raise DataError(
                    f"{path}:{start}: expected {len(header)} fields (the header's), got {len(fields)}"
                )
            rows.append((start, dict(zip(header, fields, strict=True))))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    return header, rows


def write_table(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A CSV file as `read_table` reads it (UTF-8, `\\n` line ends, quoted where needed), written
    to a temporary name first: an interrupted write never leaves a half table behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def require_columns(path: Path, header: list[str], wanted: dict[str, str]) -> None:
    """Each needed column (name -> what it is for) is in the header, else an error naming the
    file, the column, its config key and the columns the file has."""
    for column, purpose in wanted.items():
        if column not in header:
            raise DataError(
                f"{path}:1: missing column {column!r} ({purpose}); columns found: {', '.join(header)}"
            )


def image_column(cfg: DatasetConfig, path: Path, header: list[str]) -> str:
    """The first of `table.image_columns` the file has (img_path, or file_path in older files)."""
    found = next((c for c in cfg.table.image_columns if c in header), None)
    if found is None:
        names = " or ".join(repr(c) for c in cfg.table.image_columns)
        raise DataError(
            f"{path}:1: missing column {names} (dataset.table.image_columns: the image file); "
            f"columns found: {', '.join(header)}"
        )
    return found


def columns_of(cfg: DatasetConfig) -> dict[str, str]:
    """Label, text and id columns the config names -> the config key that names each."""
    wanted = {col: f"dataset.tasks.{task}" for task, col in cfg.tasks.items()}
    wanted.update({col: "dataset.text.fields" for col in cfg.text.fields})
    if cfg.table.id_column:
        wanted[cfg.table.id_column] = "dataset.table.id_column"
    return wanted


def split_file(cfg: DatasetConfig, split: str) -> Path:
    """The table of one split (a key of cfg.splits)."""
    return check_root(cfg) / cfg.table.files.format(split=cfg.splits[split])


def read_split(cfg: DatasetConfig, split: str) -> list[Sample]:
    """The samples of one split's table, each row checked (columns, image file, labels)."""
    file = split_file(cfg, split)
    header, rows = read_table(file)
    column = image_column(cfg, file, header)
    require_columns(file, header, columns_of(cfg))
    if not rows:
        raise DataError(f"{file}: split {split!r} is empty")
    images = Path(cfg.root) / cfg.table.images
    return [
        table_sample(cfg, row, f"{file}:{n}", images, column, "", cfg.table.id_column, {}) for n, row in rows
    ]
