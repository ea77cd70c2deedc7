"""A synthetic NIH ChestX-ray14-like data set, in the published layout that `pipeline.data.chestxray` reads.

    python -m pipeline.synth chestxray --out DIR [--patients N --image-size PX --seed S
                                                  --source-table Data_Entry_2017_v2020.csv.gz]

Writes Data_Entry_2017.csv, train_val_list.txt, test_list.txt (20 % of the patients in test) and
images/*.png (8-bit grayscale). Labels:
  - with --source-table (the real NIH table): N real patients, drawn at random, with their real
    label sets, follow-up numbers and views (a patient's first MAX_FOLLOW_UPS images at most, so no
    one patient dominates a small set); age and gender are synthetic;
  - without: 1-8 images per patient and NIH's image prevalences (PREVALENCE) through a Gaussian
    copula, whose per-patient and per-image shared factors make labels co-occur and persist over
    follow-ups, as in the real table (about half the images have no finding).
Images: a noisy chest-like background (two dark lung fields) with, for each positive label, a bright
blob at that label's own position (CUE_CENTRES); 10 % of positive findings draw no cue, so no model
reaches AUC 1.0. Same seed -> same bytes (CSV, lists and PNGs).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
from PIL import Image

from core.errors import KdsweepError
from pipeline.data.chestxray import LABELS, NO_FINDING, XrayRecord, read_table

# % of images per label in the real table (datasets README), in LABELS order.
PREVALENCE = (10.31, 2.48, 11.88, 17.74, 5.16, 5.65, 1.28, 4.73, 4.16, 2.05, 2.24, 1.50, 3.02, 0.20)
# Copula loadings: a patient's findings persist over follow-ups (the real table: Effusion recurs
# on the next image 49 % of the time, vs 15 % overall) and an image's findings co-occur.
PATIENT_W, IMAGE_W = 0.75, 0.4
MAX_FOLLOW_UPS = 8
TEST_FRACTION = 0.2
CUE_P = 0.9
# One cue position (x, y as fractions of the side) per label: a 4x4 grid over the chest minus two
# corners, 0.16-0.2 of the side apart, so neighbouring cues do not overlap at 32 px or more.
CUE_CENTRES = tuple(
    (x, y)
    for y in (0.22, 0.40, 0.58, 0.76)
    for x in (0.2, 0.38, 0.62, 0.8)
    if (x, y) not in ((0.2, 0.76), (0.8, 0.76))
)
CUE_SIGMA = 0.045
HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"  # NIH's own unquoted header
)


def _copula_labels(n_patients: int, rng: np.random.Generator) -> list[list[tuple[int, ...]]]:
    """Per patient, the label tuples of its images: thresholded correlated Gaussians whose
    marginals are PREVALENCE exactly."""
    thresholds = np.array([NormalDist().inv_cdf(1 - p / 100) for p in PREVALENCE])
    noise_w = np.sqrt(1 - PATIENT_W**2 - IMAGE_W**2)
    out = []
    for _ in range(n_patients):
        n = min(int(rng.geometric(0.45)), MAX_FOLLOW_UPS)
        persistent = rng.normal(size=len(LABELS))
        shared = rng.normal(size=(n, 1))
        z = PATIENT_W * persistent + IMAGE_W * shared + noise_w * rng.normal(size=(n, len(LABELS)))
        out.append([tuple(int(v) for v in row) for row in (z > thresholds)])
    return out


def _from_source(
    source_table: Path, n_patients: int, rng: np.random.Generator
) -> list[tuple[str, list[XrayRecord]]]:
    """n_patients real patients (sorted id order, then drawn), each with its first follow-ups."""
    by_patient: dict[str, list[XrayRecord]] = {}
    for r in read_table(source_table, Path("images")):
        by_patient.setdefault(r.patient_id, []).append(r)
    ids = sorted(by_patient)
    if n_patients > len(ids):
        raise ValueError(f"{source_table} has {len(ids)} patients; asked for {n_patients}")
    picked = sorted(ids[i] for i in rng.choice(len(ids), size=n_patients, replace=False))
    return [(p, sorted(by_patient[p], key=lambda r: r.follow_up)[:MAX_FOLLOW_UPS]) for p in picked]


def _background(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A chest-like template (bright body, two dark lung fields) and the pixel grid."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    lungs = sum(np.exp(-((((xx - cx) / 0.17) ** 2 + ((yy - 0.5) / 0.32) ** 2) ** 2)) for cx in (0.3, 0.7))
    body = np.exp(-((((xx - 0.5) / 0.48) ** 2 + ((yy - 0.5) / 0.55) ** 2) ** 3))
    return 0.15 + 0.5 * body - 0.3 * lungs, yy, xx


def _image(
    labels: tuple[int, ...], template: tuple[np.ndarray, np.ndarray, np.ndarray], rng: np.random.Generator
) -> Image.Image:
    base, yy, xx = template
    img = base * rng.uniform(0.85, 1.15) + rng.normal(0, 0.06, base.shape)
    for k in np.flatnonzero(labels):
        if rng.random() < CUE_P:
            cx, cy = CUE_CENTRES[k] + rng.normal(0, 0.015, 2)
            img += rng.uniform(0.2, 0.4) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * CUE_SIGMA**2))
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def _finding_labels(labels: tuple[int, ...]) -> str:
    names = sorted(name for name, y in zip(LABELS, labels, strict=True) if y)  # NIH sorts them
    return "|".join(names) if names else NO_FINDING


def generate_chestxray(
    out: Path, n_patients: int, image_size: int = 64, seed: int = 0, source_table: Path | None = None
) -> None:
    """Write the data set to `out` (table, split lists, images/); deterministic per seed."""
    if n_patients < 2:
        raise ValueError(f"n_patients must be >= 2 (one for each of train_val and test), got {n_patients}")
    rng = np.random.default_rng(seed)
    if source_table is not None:
        patients = [
            (pid, [(r.image_path.name, r.labels, r.follow_up, r.view) for r in rows])
            for pid, rows in _from_source(Path(source_table), n_patients, rng)
        ]
    else:
        patients = [
            (
                str(i),
                [
                    (f"{i:08d}_{f:03d}.png", y, f, ("PA", "AP")[int(rng.random() < 0.4)])
                    for f, y in enumerate(ys)
                ],
            )
            for i, ys in enumerate(_copula_labels(n_patients, rng), 1)
        ]
    (out / "images").mkdir(parents=True, exist_ok=True)
    template = _background(image_size)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    for pid, images in patients:
        age, gender = int(rng.integers(18, 86)), ("M", "F")[int(rng.integers(2))]
        for name, labels, follow_up, view in images:
            _image(labels, template, rng).save(out / "images" / name, optimize=False)
            writer.writerow(
                [name, _finding_labels(labels), follow_up, pid, age + follow_up // 4, gender, view]
                + [image_size, image_size, 0.143, 0.143]
            )
    (out / "Data_Entry_2017.csv").write_text(HEADER + "\n" + table.getvalue(), encoding="utf-8")
    order = rng.permutation(len(patients))
    in_test = set(order[: max(1, round(TEST_FRACTION * len(patients)))].tolist())
    lists: dict[str, list[str]] = {"train_val_list.txt": [], "test_list.txt": []}
    for i, (_, images) in enumerate(patients):
        lists["test_list.txt" if i in in_test else "train_val_list.txt"] += [im[0] for im in images]
    for file, names in lists.items():
        (out / file).write_text("".join(n + "\n" for n in sorted(names)), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.synth chestxray", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--patients", type=int, default=300)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source-table", type=Path, help="the real NIH Data_Entry_2017 table to draw labels from")
    a = p.parse_args(argv)
    if a.patients < 2:
        p.error("--patients must be >= 2")
    if a.image_size < 16:
        p.error("--image-size must be >= 16 (the label cues need room)")
    try:
        generate_chestxray(a.out, a.patients, a.image_size, a.seed, a.source_table)
    except (KdsweepError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    source = f"labels from {a.source_table}" if a.source_table else "built-in NIH prevalences"
    print(f"wrote {a.patients} patients ({a.image_size}px, seed {a.seed}, {source}) to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
