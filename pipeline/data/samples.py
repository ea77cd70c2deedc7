"""One sample of a table of images with labels and text, whatever its file format: the record
every reader returns (MedPix's JSON lines, pipeline.data.medpix; the group's CSV files,
pipeline.data.csvtable) and `table_sample`, the one place a row becomes a validated Sample (label
fields, the image file, the text with its fallback), so the formats differ only in how rows are
read. A leaf module: both readers import it, neither imports the other's internals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import DataError
from core.schema import DatasetConfig

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Sample:
    case_id: str
    image_path: Path
    text: str
    labels: dict[str, str]  # task -> raw label value
    where: str  # file:line, for errors


def get_path(record: Any, dotted: str) -> Any:
    """record['a']['b'] for 'a.b'; None when any part is missing. A key that is itself in the
    record wins (a CSV column may have a dot in its name)."""
    if isinstance(record, dict) and dotted in record:
        return record[dotted]
    for part in dotted.split("."):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


def check_root(cfg: DatasetConfig) -> Path:
    """The dataset's root folder, or a one-line error saying how to point at it."""
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(
            f"dataset {cfg.name!r}: root {root} not found (set dataset.root=DIR or the dataset's "
            "*_ROOT environment variable; `make data` writes the synthetic ones)"
        )
    return root


def _text(parts: list[Any], separator: str) -> str:
    return separator.join(str(p).strip() for p in parts if p is not None and str(p).strip())


def table_sample(
    cfg: DatasetConfig,
    row: dict,
    where: str,
    images: Path,
    image_field: str,
    image_ext: str,
    case_field: str | None,
    cases: dict[str, dict],
) -> Sample:
    """One row of any "table of images with labels and text" (a MedPix description line, a
    Wound-1-0 CSV row) as a checked Sample: the image named by `image_field` exists under
    `images` (`image_ext` appended when the value lacks it), every task's label is there, the
    text is `text.fields` (+ `text.case_fields` of its case), or `text.empty` when all are empty.
    Both formats go through here, so both check and build samples the same way."""
    stem = row.get(image_field)
    if not isinstance(stem, str) or not stem.strip():
        raise DataError(f"{where}: missing image field {image_field!r}")
    stem = stem.strip()
    path = images / (stem if not image_ext or stem.endswith(image_ext) else stem + image_ext)
    if not path.is_file():
        raise DataError(f"{where}: image file not found: {path}")
    labels = {}
    for task, field in cfg.tasks.items():
        value = get_path(row, field)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{where}: missing label field {field!r} (task {task!r})")
        labels[task] = str(value).strip()
    case_id = str(row.get(case_field) or stem) if case_field else stem
    case = cases.get(case_id, {})
    sep = cfg.text.separator
    text = _text([get_path(row, f) for f in cfg.text.fields], sep)
    extra = _text([get_path(case, f) for f in cfg.text.case_fields], sep)
    return Sample(case_id, path, _text([text, extra], sep) or cfg.text.empty, labels, where)
