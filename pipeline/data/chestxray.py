"""Read NIH ChestX-ray14 as published into patient-grouped, multi-label train/val/test records.

Layout (NIH Clinical Center; the synthetic set of `pipeline.data.synth.chestxray` writes the same)::

    <root>/Data_Entry_2017.csv   one image per row (also .csv.gz, and the Data_Entry_2017_v2020 name)
    <root>/train_val_list.txt    one image file name per line; optional, together with test_list.txt
    <root>/test_list.txt
    <root>/images/<Image Index>  the PNGs (checked only with check_images: the table ships without them)

Every split is by patient: follow-ups of one patient look alike, so a patient in two splits would
inflate test scores. Without the two list files the test split is a patient-grouped, multi-label
stratified 20 % of the patients, drawn with a fixed seed (FALLBACK_SEED) so runs of different seeds
are scored on the same test images; val is carved out of train_val the same way, per `seed`.
`subset` keeps that fraction of the patients (all their images), stratified so that each label's
image-level prevalence stays within about one percentage point of the whole table's.
Everything is checked before any work; each problem is a one-line `DataError` naming file:line.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.schema import DatasetConfig

# The order is the model's output order: changing it silently permutes every trained head.
LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
TABLE_NAMES = (
    "Data_Entry_2017.csv",
    "Data_Entry_2017.csv.gz",
    "Data_Entry_2017_v2020.csv",
    "Data_Entry_2017_v2020.csv.gz",
)
LISTS = {"train_val": "train_val_list.txt", "test": "test_list.txt"}
COLUMNS = ("Image Index", "Finding Labels", "Follow-up #", "Patient ID", "View Position")
FALLBACK_TEST_FRACTION = 0.2
FALLBACK_SEED = 0
# Patient features for stratification: "has >= k images with label L" and ">= k images at all".
# Thresholds above 1 spread the heavy patients (up to 184 images) over both sides, which is what
# keeps image-level prevalences close. Doubling thresholds up to 64 (measured on the real table,
# subset 0.2: subset/train/val/test off by at most 0.20/0.28/0.22/0.36 points) replaced
# (1, 3, 10), which left the stratified 20 % test split 1.07 points off (Pneumothorax).
THRESHOLDS = (1, 2, 4, 8, 16, 32, 64)
STAGE_VAL_FRACTION, STAGE_VAL_SEED = 0.1, 0  # the data stage's val carve-out (stage_splits)
CANDIDATES = 3  # stratified draws tried; the one closest to the pool's prevalences is kept
_INDEX = {name: i for i, name in enumerate(LABELS)}


@dataclass(frozen=True)
class XrayRecord:
    image_path: Path
    patient_id: str
    labels: tuple[int, ...]  # 0/1 per LABELS entry; all 0 for "No Finding"
    follow_up: int
    view: str  # View Position: PA or AP
    where: str  # file:line of the table row, for errors


def _lines(path: Path) -> Iterator[str]:
    """Decoded lines of a text or .gz file; a bad byte or a corrupt file is reported with its line."""
    n = 0
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    yield raw.decode("utf-8-sig" if n == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(
                        f"{path}:{n}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})"
                    ) from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}:{n + 1}: cannot read ({type(e).__name__}: {e})") from None


def find_table(root: Path) -> Path:
    """The one Data_Entry_2017 table under root; two of them would be ambiguous."""
    if not root.is_dir():
        raise DataError(f"chest X-ray root {root} not found")
    found = [root / name for name in TABLE_NAMES if (root / name).is_file()]
    if not found:
        raise DataError(f"{root}: no label table found (expected one of {', '.join(TABLE_NAMES)})")
    if len(found) > 1:
        raise DataError(f"{root}: several label tables ({', '.join(p.name for p in found)}); keep one")
    return found[0]


def _labels(field: str, where: str) -> tuple[int, ...]:
    names = [s.strip() for s in field.split("|")]
    if names == [NO_FINDING]:
        return (0,) * len(LABELS)
    y = [0] * len(LABELS)
    for name in names:
        if name == NO_FINDING:
            raise DataError(f"{where}: {NO_FINDING!r} together with other labels in 'Finding Labels'")
        if name not in _INDEX:
            raise DataError(
                f"{where}: unknown label {name!r} in 'Finding Labels' (valid: {', '.join(LABELS)}, or {NO_FINDING})"
            )
        y[_INDEX[name]] = 1
    return tuple(y)


def read_table(path: Path, images_dir: Path) -> list[XrayRecord]:
    """All rows of a Data_Entry_2017 table, validated; image paths point into images_dir."""
    reader = csv.reader(_lines(path))
    try:
        header = [h.strip() for h in next(reader)]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"{path}:1: missing column(s) {', '.join(map(repr, missing))} (found: {', '.join(header)})"
            )
        col = {c: header.index(c) for c in COLUMNS}
        need = max(col.values()) + 1
        records: list[XrayRecord] = []
        first: dict[str, str] = {}
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not "".join(row).strip():  # a blank line, or only separators
                continue
            if len(row) < need:
                raise DataError(f"{where}: expected at least {need} fields, got {len(row)}")
            name, patient = row[col["Image Index"]].strip(), row[col["Patient ID"]].strip()
            if not name or not patient:
                raise DataError(f"{where}: empty {'Image Index' if not name else 'Patient ID'}")
            if name in first:
                raise DataError(f"{where}: image {name!r} listed twice (first at {first[name]})")
            first[name] = where
            try:
                follow_up = int(row[col["Follow-up #"]])
            except ValueError:
                raise DataError(
                    f"{where}: 'Follow-up #' {row[col['Follow-up #']]!r} is not an integer"
                ) from None
            labels = _labels(row[col["Finding Labels"]], where)
            view = row[col["View Position"]].strip()
            records.append(XrayRecord(images_dir / name, patient, labels, follow_up, view, where))
    except StopIteration:
        raise DataError(f"{path}:1: empty table (expected a header with {', '.join(COLUMNS)})") from None
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    if not records:
        raise DataError(f"{path}:2: the table has a header but no rows")
    return records


def _read_list(path: Path) -> list[tuple[str, str]]:
    """(image name, file:line) per non-empty line of a split list."""
    return [(line.strip(), f"{path}:{n}") for n, line in enumerate(_lines(path), 1) if line.strip()]


def _list_split(root: Path, records: list[XrayRecord]) -> dict[str, str] | None:
    """Image name -> 'train_val' or 'test' from the NIH list files; None when both are absent."""
    paths = {split: root / name for split, name in LISTS.items()}
    present = [p.is_file() for p in paths.values()]
    if not any(present):
        return None
    if not all(present):
        missing = next(p for p in paths.values() if not p.is_file())
        raise DataError(f"{missing}: not found (the train_val and test lists come together)")
    by_name = {r.image_path.name: r for r in records}
    listed: dict[str, tuple[str, str]] = {}  # image -> (split, where)
    patients: dict[str, tuple[str, str]] = {}  # patient -> (split, where) of its first image
    for split, path in paths.items():
        for name, where in _read_list(path):
            if name in listed:
                raise DataError(f"{where}: image {name!r} listed twice (first at {listed[name][1]})")
            listed[name] = (split, where)
            if name not in by_name:
                raise DataError(f"{where}: image {name!r} is not in the label table")
            pid = by_name[name].patient_id
            other = patients.setdefault(pid, (split, where))
            if other[0] != split:
                raise DataError(f"leakage: patient {pid} is in {other[0]} ({other[1]}) and {split} ({where})")
    for r in records:
        if r.image_path.name not in listed:
            raise DataError(
                f"{r.where}: image {r.image_path.name!r} is in neither {' nor '.join(LISTS.values())}"
            )
    return {name: split for name, (split, _) in listed.items()}


def label_matrix(records: list[XrayRecord]) -> np.ndarray:
    """(n_images, 14) 0/1 labels in LABELS order."""
    return np.array([r.labels for r in records], dtype=np.int64).reshape(len(records), len(LABELS))


def prevalence(records: list[XrayRecord]) -> np.ndarray:
    """Fraction of images carrying each label, in LABELS order."""
    return label_matrix(records).mean(axis=0)


def grouped_stratified_split(
    records: list[XrayRecord], fraction: float, seed: int
) -> tuple[list[XrayRecord], list[XrayRecord]]:
    """(rest, picked): picked holds `fraction` of the patients with all their images, chosen by
    iterative multi-label stratification (Sechidis et al., 2011; `iterative-stratification`) on
    patient features "has >= t images with label L" and "has >= t images" (THRESHOLDS), the
    closest of CANDIDATES draws to the pool's image prevalences kept. Deterministic per seed,
    whatever the order of records (patients are sorted first)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    patients = sorted({r.patient_id for r in records})
    if len(patients) < 2:
        where = records[0].where if records else "no records"
        raise DataError(f"{where}: cannot split {len(patients)} patient(s) by patient; need at least 2")
    index = {p: i for i, p in enumerate(patients)}
    owner = np.array([index[r.patient_id] for r in records])
    y = label_matrix(records)
    counts = np.zeros((len(patients), len(LABELS)), dtype=np.int64)
    np.add.at(counts, owner, y)
    sizes = np.bincount(owner, minlength=len(patients))
    features = np.concatenate(
        [counts >= k for k in THRESHOLDS] + [np.stack([sizes >= k for k in THRESHOLDS], axis=1)], axis=1
    )
    n_pick = min(max(1, round(fraction * len(patients))), len(patients) - 1)
    splitter = MultilabelStratifiedShuffleSplit(n_splits=CANDIDATES, test_size=n_pick, random_state=seed)
    pool, best, best_score = y.mean(axis=0), None, np.inf
    for _, picked in splitter.split(np.zeros(len(patients)), features):
        mask = np.zeros(len(patients), dtype=bool)
        mask[picked] = True
        score = np.abs(y[mask[owner]].mean(axis=0) - pool).max()
        if score < best_score:
            best, best_score = mask, score
    chosen = best[owner]
    return [r for r, c in zip(records, chosen, strict=True) if not c], [
        r for r, c in zip(records, chosen, strict=True) if c
    ]


def check_leakage(splits: dict[str, list[XrayRecord]]) -> None:
    """A patient in two splits is an error naming the patient and one row of each."""
    seen: dict[str, tuple[str, XrayRecord]] = {}
    for name, records in splits.items():
        for r in records:
            other = seen.setdefault(r.patient_id, (name, r))
            if other[0] != name:
                raise DataError(
                    f"leakage: patient {r.patient_id} is in split {other[0]!r} ({other[1].where}) "
                    f"and split {name!r} ({r.where})"
                )


def read_chestxray(
    root: Path,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    subset: float | None = None,
    subset_seed: int = 0,
    check_images: bool = True,
) -> dict[str, list[XrayRecord]]:
    """train/val/test records (table order), validated, patient-grouped and leakage-checked.

    `val_fraction` of the train_val patients become val (per `seed`); `subset` keeps that fraction
    of all patients first (per `subset_seed`); images are checked only for the records kept.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    root = Path(root)
    records = read_table(find_table(root), root / "images")
    assignment = _list_split(root, records)  # validated against the whole table, before any subset
    if subset is not None and subset != 1:
        records = grouped_stratified_split(records, subset, subset_seed)[1]
    if assignment is None:
        train_val, test = grouped_stratified_split(records, FALLBACK_TEST_FRACTION, FALLBACK_SEED)
    else:
        train_val = [r for r in records if assignment[r.image_path.name] == "train_val"]
        test = [r for r in records if assignment[r.image_path.name] == "test"]
    if not train_val or not test:
        raise DataError(f"{root}: split {'test' if train_val else 'train_val'!r} is empty after the subset")
    train, val = grouped_stratified_split(train_val, val_fraction, seed)
    splits = {"train": train, "val": val, "test": test}
    check_leakage(splits)
    if check_images:
        for r in (r for part in splits.values() for r in part):
            if not r.image_path.is_file():
                raise DataError(f"{r.where}: image file not found: {r.image_path}")
    return splits


def stage_splits(cfg: DatasetConfig, check_images: bool = True) -> dict[str, list[XrayRecord]]:
    """train/val/test records of a `format: chestxray` dataset as the data stage forms them: the
    dataset's `subset`, val carved out of train_val (STAGE_VAL_FRACTION of its patients, seed
    STAGE_VAL_SEED)."""
    return read_chestxray(
        Path(cfg.root),
        val_fraction=STAGE_VAL_FRACTION,
        seed=STAGE_VAL_SEED,
        subset=cfg.subset,
        check_images=check_images,
    )


def samples(cfg: DatasetConfig) -> tuple[dict[str, list], dict[str, tuple[str, ...]]]:
    """A `format: chestxray` dataset as the data stage's samples: train/dev/test (dev = the
    patient-grouped val carve-out), one multilabel task (the dataset's only `tasks` key) whose
    value is the 14-long 0/1 tuple, no text. Returns (splits, label maps)."""
    from pipeline.data.medpix import Sample

    (task,) = tuple(cfg.tasks)
    found = stage_splits(cfg)
    names = {"train": "train", "dev": "val", "test": "test"}
    splits = {
        split: [Sample(r.patient_id, r.image_path, "", {task: r.labels}, r.where) for r in found[source]]
        for split, source in names.items()
    }
    return splits, {task: LABELS}


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Rows of cells as aligned text: the first `left` columns left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(  # noqa: E731
        c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
    )
    return ["  " + fmt(r).rstrip() for r in [header, *rows]]


def describe(cfg: DatasetConfig, check_images: bool = True) -> str:
    """A plain-text summary of a `format: chestxray` dataset as the data stage reads it: per split
    (train, the val carve-out, test) images, patients, No Finding share and labels per image; per
    label the positives and prevalence in each split; the subset's share when `subset` is set.
    `check_images=False` reads the table and lists without the images (the NIH table ships alone)."""
    root = Path(cfg.root)
    splits = stage_splits(cfg, check_images)
    table = find_table(root)
    if all((root / name).is_file() for name in LISTS.values()):
        test_how = f"the images in {LISTS['test']}"
    else:
        test_how = (
            f"a stratified {FALLBACK_TEST_FRACTION:.0%} of the patients (seed {FALLBACK_SEED}; no list files)"
        )
    lines = [
        f"dataset {cfg.name} at {cfg.root} (NIH ChestX-ray14 layout, table {table.name})",
        f"  splits by patient; test: {test_how}; val: {STAGE_VAL_FRACTION:.0%} of the train_val "
        f"patients (seed {STAGE_VAL_SEED})",
    ]
    if not check_images:
        lines.append("  image files not checked (--skip-images)")
    columns = {**splits, "all": [r for part in splits.values() for r in part]}
    if cfg.subset is not None and cfg.subset != 1:
        whole, kept = read_table(table, root / "images"), columns["all"]
        n_whole, n_kept = len({r.patient_id for r in whole}), len({r.patient_id for r in kept})
        lines.append(
            f"  subset {cfg.subset:g}: {n_kept:,} of {n_whole:,} patients ({n_kept / n_whole:.1%}), "
            f"{len(kept):,} of {len(whole):,} images ({len(kept) / len(whole):.1%}), stratified by label"
        )
    # per split: (images, 15) 0/1, the 14 labels then No Finding
    y = {}
    for name, records in columns.items():
        labels = label_matrix(records)
        y[name] = np.concatenate([labels, (labels.sum(axis=1) == 0)[:, None]], axis=1)

    def pct(part: float, whole: int) -> str:
        return f"{100 * part / whole:.1f} %" if whole else "-"

    rows = []
    for name, records in columns.items():
        n, patients = len(records), len({r.patient_id for r in records})
        per_image = y[name][:, : len(LABELS)].sum(axis=1)
        rows.append(
            [
                name,
                f"{n:,}",
                f"{patients:,}",
                f"{n / patients:.2f}" if patients else "-",
                pct(y[name][:, -1].sum(), n),
                f"{per_image.mean():.2f}" if n else "-",
            ]
        )
    lines += _table(["split", "images", "patients", "images/patient", NO_FINDING, "labels/image"], rows)
    lines.append("")
    header = ["label"] + [h for name in columns for h in (name, "%")]
    rows = [
        [label]
        + [
            c
            for name in columns
            for c in (f"{y[name][:, k].sum():,}", pct(y[name][:, k].sum(), len(y[name])))
        ]
        for k, label in enumerate((*LABELS, NO_FINDING))
    ]
    return "\n".join(lines + _table(header, rows))
