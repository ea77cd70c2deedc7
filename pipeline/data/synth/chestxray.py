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
Images: a noisy chest (body, two dark lung fields, heart) whose shape and densities vary per
patient (Anatomy, kept over follow-ups), faint random blobs, and for each positive label a cue a
small CNN can learn at 64 px: the finding's own pattern (a band, a disk, dots, stripes, a
cross-hatch, a ring, a dark region...) at its own place (CUE_CENTRES), jittered in position, size
and contrast. 10 % of positive findings draw no cue, so no model reaches AUC 1.0. With the default
400 patients, a 4-epoch xlite-tiny run (64 px) reaches a test macro AUC of about 0.93-0.97 with its
resnet10t teacher, 0.77-0.80 with the mobilenetv3_small_050 + MHSA student and 0.82-0.89 with
efficientnet_b0 or mobilenetv3_small_100 students. Same seed -> same bytes (CSV, lists and PNGs).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
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
# The default size: a 4-epoch xlite-tiny run on it takes about a minute on 2 CPU cores; with 300
# patients (fewer training steps) the mobilenetv3_small_050 student's AUC drops by about 0.03.
PATIENTS = 400
# Where each finding draws its cue (x, y as fractions of the side, before the patient's and the
# image's shift), in LABELS order. Bilateral findings (Edema, Emphysema) name one side here.
CUE_CENTRES = (
    (0.30, 0.68),  # Atelectasis: a horizontal plate-like band, right lower zone
    (0.54, 0.64),  # Cardiomegaly: the heart shadow enlarged
    (0.28, 0.85),  # Effusion: the right base filled, sharp horizontal upper edge
    (0.30, 0.46),  # Infiltration: a broad soft haze, right mid zone
    (0.72, 0.44),  # Mass: a large sharp-edged disk, left mid zone
    (0.30, 0.26),  # Nodule: three small dense dots, right upper zone
    (0.75, 0.64),  # Pneumonia: a cluster of soft blobs, left lower zone
    (0.70, 0.23),  # Pneumothorax: a dark apex without markings, bright pleural line at its edge
    (0.16, 0.58),  # Consolidation: a dense patch striped by vertical air bronchograms, right lateral
    (0.41, 0.46),  # Edema: horizontal Kerley lines at both hila (this one and 0.18 to the right)
    (0.62, 0.34),  # Emphysema: both lungs hyperlucent (darker)
    (0.79, 0.81),  # Fibrosis: a reticular cross-hatch, left base periphery
    (0.88, 0.47),  # Pleural_Thickening: a vertical band along the left lateral lung edge
    (0.50, 0.90),  # Hernia: a ring (air-fluid level) below the heart
)
# Which way a cue moves the mean brightness at its centre (Pneumothorax and Emphysema darken).
CUE_SIGN = tuple(-1 if name in ("Pneumothorax", "Emphysema") else 1 for name in LABELS)
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


@dataclass(frozen=True)
class Anatomy:
    """One patient's chest, kept over follow-ups: thorax shift, lung and heart sizes, densities."""

    dx: float
    dy: float
    lung_w: float
    lung_h: float
    heart_r: float
    body: float
    lung: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Anatomy:
        return cls(
            dx=rng.uniform(-0.03, 0.03),
            dy=rng.uniform(-0.03, 0.03),
            lung_w=rng.uniform(0.15, 0.19),
            lung_h=rng.uniform(0.29, 0.35),
            heart_r=rng.uniform(0.09, 0.12),
            body=rng.uniform(0.42, 0.55),
            lung=rng.uniform(0.22, 0.32),
        )


def _disk(d2: np.ndarray, r: float, edge: float) -> np.ndarray:
    """A disk of radius r with a soft edge of width ~edge, from squared distances d2."""
    return 1 / (1 + np.exp((np.sqrt(d2) - r) / edge))


def _gauss(x: np.ndarray, y: np.ndarray, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * ((x / sx) ** 2 + (y / sy) ** 2))


def _cue(k: int, x: np.ndarray, y: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Label k's pattern around its centre (x, y: offsets from it), size scale s, unit contrast."""
    name = LABELS[k]
    if name == "Atelectasis":
        return 0.7 * _gauss(x, y, 0.14 * s, 0.035 * s)
    if name == "Cardiomegaly":
        return 0.4 * _disk((x / 1.15) ** 2 + y**2, 0.17 * s, 0.015)
    if name == "Effusion":
        return 0.7 * np.exp(-0.5 * (x / (0.12 * s)) ** 2) / (1 + np.exp(-(y + 0.07 * s) / 0.008))
    if name == "Infiltration":
        return 0.5 * _gauss(x, y, 0.11 * s, 0.13 * s)
    if name == "Mass":
        return 0.7 * _disk(x**2 + y**2, 0.08 * s, 0.006)
    if name == "Nodule":
        return sum(
            0.9 * _gauss(x - ox, y - oy, 0.028 * s, 0.028 * s) for ox, oy in rng.normal(0, 0.05, (3, 2))
        )
    if name == "Pneumonia":
        return sum(
            0.55 * _gauss(x - ox, y - oy, 0.04 * s, 0.04 * s) for ox, oy in rng.normal(0, 0.05 * s, (5, 2))
        )
    if name == "Pneumothorax":
        d2 = x**2 + y**2
        ring = np.exp(-0.5 * ((np.sqrt(d2) - 0.12 * s) / 0.01) ** 2)
        return -0.5 * _disk(d2, 0.12 * s, 0.01) + 0.5 * ring
    if name == "Consolidation":
        return 0.75 * _gauss(x, y, 0.09 * s, 0.12 * s) * (0.5 + 0.5 * np.cos(2 * np.pi * x / (0.1 * s)))
    if name == "Edema":
        lines = 0.5 + 0.5 * np.cos(2 * np.pi * y / (0.07 * s))
        return 0.7 * lines * (_gauss(x, y, 0.07 * s, 0.1 * s) + _gauss(x - 0.18, y, 0.07 * s, 0.1 * s))
    if name == "Fibrosis":
        period = 0.12 * s
        net = np.maximum(np.cos(2 * np.pi * (x + y) / period), np.cos(2 * np.pi * (x - y) / period))
        return 0.8 * _gauss(x, y, 0.12 * s, 0.12 * s) * (0.3 + 0.7 * np.clip(net, 0, None))
    if name == "Pleural_Thickening":
        return 0.8 * _gauss(x, y, 0.04 * s, 0.2 * s)
    if name == "Hernia":
        d2 = x**2 + (y * 1.3) ** 2
        return 0.7 * np.exp(-0.5 * ((np.sqrt(d2) - 0.07 * s) / 0.015) ** 2) - 0.2 * _disk(d2, 0.06 * s, 0.008)
    raise ValueError(name)  # pragma: no cover - Emphysema is drawn on the lungs (see _image)


def _image(
    labels: tuple[int, ...], anatomy: Anatomy, grid: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> Image.Image:
    """A noisy chest (body, two dark lung fields, heart) with each positive label's cue: its own
    pattern at its own place, jittered in position, size and contrast; CUE_P of positive findings
    draw one, so no model reaches AUC 1.0; faint random blobs and noise are in every image."""
    yy, xx = grid
    x = xx - anatomy.dx - rng.normal(0, 0.01)
    y = yy - anatomy.dy - rng.normal(0, 0.01)
    body = np.exp(-((((x - 0.5) / 0.46) ** 2 + ((y - 0.52) / 0.56) ** 2) ** 3))
    lungs = sum(
        np.exp(-((((x - cx) / anatomy.lung_w) ** 2 + ((y - 0.48) / anatomy.lung_h) ** 2) ** 2))
        for cx in (0.3, 0.7)
    )
    heart = _disk(((x - 0.54) / 1.15) ** 2 + (y - 0.64) ** 2, anatomy.heart_r, 0.02)
    img = 0.12 + anatomy.body * body - anatomy.lung * lungs + 0.2 * heart
    for cx, cy in rng.uniform(0.15, 0.85, (int(rng.integers(0, 4)), 2)):  # faint distractors
        img += rng.uniform(0.03, 0.1) * _gauss(x - cx, y - cy, *rng.uniform(0.02, 0.05, 2))
    for k in np.flatnonzero(labels):
        if rng.random() >= CUE_P:
            continue
        contrast, scale = rng.uniform(0.6, 1.1), rng.uniform(0.8, 1.25)
        if LABELS[k] == "Emphysema":
            img -= contrast * 0.3 * lungs
            continue
        cx, cy = CUE_CENTRES[k] + rng.normal(0, 0.015, 2)
        img += contrast * _cue(k, x - cx, y - cy, scale, rng)
    img = img * rng.uniform(0.92, 1.08) + rng.normal(0, rng.uniform(0.03, 0.06), img.shape)
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
    grid = tuple(np.mgrid[0:image_size, 0:image_size] / image_size)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    for pid, images in patients:
        age, gender = int(rng.integers(18, 86)), ("M", "F")[int(rng.integers(2))]
        anatomy = Anatomy.draw(rng)
        for name, labels, follow_up, view in images:
            _image(labels, anatomy, grid, rng).save(out / "images" / name, optimize=False)
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
    p.add_argument("--patients", type=int, default=PATIENTS)
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
