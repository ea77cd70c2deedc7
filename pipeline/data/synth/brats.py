"""A small synthetic BraTS 2019-like training set, in the layout `pipeline.data.brats` reads.

    python -m pipeline.synth brats --out DIR [--hgg 56 --lgg 20 --shape 40 40 24 --seed S]

Writes HGG/<id>/<id>_{flair,t1,t1ce,t2,seg}.nii.gz (int16 intensities, uint8 seg with BraTS
labels 1 necrosis/non-enhancing, 2 oedema, 4 enhancing; identity affine) and name_mapping.csv.
Ids are BraTS19_SYN_0001_1, ... with the grades shuffled over them (an id tells nothing).

Each subject is a skull-stripped "head": an ellipsoid brain (white matter inside, a grey-matter
shell, a central CSF ventricle) in a volume whose top and bottom slices are empty (background 0),
with a smooth bias field, Gaussian noise and a per-modality scanner gain (so only per-volume
normalisation makes subjects comparable). Every subject has a tumour with surrounding oedema
(flair- and t2-bright) spanning 20-50 % of the brain slices; the grade cue lies only there:
  - HGG: a ring-enhancing lesion: a t1ce-bright rim (about 2x white matter) around a necrotic,
    t1-dark, t2-bright core;
  - LGG: a diffuse, non-enhancing, flair-bright lesion (t1ce no brighter than normal tissue).
So the slices outside the tumour (most of a bag) carry no grade information: a bag-level (MIL)
model can learn the grade, a single random slice often cannot. HGG:LGG defaults to 28:10 (2.8:1,
as in BraTS 2019's 259:76). Same arguments -> same bytes (gzip written with mtime 0).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import sys
from pathlib import Path

import numpy as np

from core.errors import DataError, KdsweepError

MODALITIES = ("flair", "t1", "t1ce", "t2")
# Relative intensity of each tissue per modality (white matter ~ 1 in t1); columns in TISSUES order.
TISSUES = ("wm", "gm", "csf", "oedema", "lesion", "ring", "necrosis")
INTENSITY = {
    "flair": (0.55, 0.70, 0.15, 1.25, 1.35, 1.00, 0.50),
    "t1": (0.90, 0.60, 0.25, 0.50, 0.45, 0.60, 0.30),
    "t1ce": (0.90, 0.62, 0.25, 0.50, 0.45, 2.00, 0.30),
    "t2": (0.45, 0.65, 1.30, 1.20, 1.25, 0.90, 1.40),
}
SEG_LABEL = {"necrosis": 1, "lesion": 1, "oedema": 2, "ring": 4}
NOISE_SD = 0.03  # relative to the tissue intensity
MAPPING_HEADER = (
    "Grade",
    "BraTS_2017_subject_ID",
    "BraTS_2018_subject_ID",
    "TCGA_TCIA_subject_ID",
    "BraTS_2019_subject_ID",
)


def subject_id(k: int) -> str:
    return f"BraTS19_SYN_{k:04d}_1"


def _tissue_map(grade: str, shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """int8 [X, Y, Z]: -1 background, else an index into TISSUES."""
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij"))
    centre = np.array([(n - 1) / 2 for n in shape]) + rng.uniform(-0.5, 0.5, 3)
    # z radius 0.36 * Z: the outer ~14 % of slices at each end hold no brain
    radii = np.array(shape) * np.array([0.40, 0.44, 0.36]) * rng.uniform(0.93, 1.0, 3)
    rel = (grid - centre[:, None, None, None]) / radii[:, None, None, None]
    d = np.sqrt((rel**2).sum(0))
    tissue = np.full(shape, -1, dtype=np.int8)
    tissue[d < 1] = TISSUES.index("gm")
    tissue[d < 0.8] = TISSUES.index("wm")
    ventricle = (rel[0] / 0.12) ** 2 + (rel[1] / 0.28) ** 2 + (rel[2] / 0.35) ** 2 < 1
    tissue[ventricle] = TISSUES.index("csf")
    # The tumour: centred off the midline, inside the brain; its z half-extent makes it span a
    # random 20-50 % of the brain slices, so the grade cue is in a minority of a bag's slices.
    angle = rng.uniform(0, 2 * np.pi)
    t_rel = np.array([0.45 * np.cos(angle), 0.45 * np.sin(angle), rng.uniform(-0.3, 0.3)])
    t_centre = centre + t_rel * radii
    span = rng.uniform(0.2, 0.5) * 2 * radii[2]  # slices the tumour covers
    t_radii = np.array([0.28 * radii[0], 0.28 * radii[1], max(span / 2, 1.0)])
    dt = np.sqrt((((grid - t_centre[:, None, None, None]) / t_radii[:, None, None, None]) ** 2).sum(0))
    inside = d < 1
    tissue[inside & (dt < 1.5)] = TISSUES.index("oedema")
    if grade == "HGG":
        tissue[inside & (dt < 1)] = TISSUES.index("ring")
        tissue[inside & (dt < 0.55)] = TISSUES.index("necrosis")
    else:
        tissue[inside & (dt < 1)] = TISSUES.index("lesion")
    return tissue


def _subject(grade: str, shape: tuple[int, int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """{modality: int16 volume, "seg": uint8 labels} of one subject."""
    tissue = _tissue_map(grade, shape, rng)
    brain = tissue >= 0
    idx = np.clip(tissue, 0, None)
    lin = [np.linspace(-1, 1, n) for n in shape]
    slope = rng.uniform(-0.05, 0.05, 3)  # a smooth bias field of +-15 % at most
    bias = (
        1
        + slope[0] * lin[0][:, None, None]
        + slope[1] * lin[1][None, :, None]
        + slope[2] * lin[2][None, None, :]
    )
    out: dict[str, np.ndarray] = {}
    for m in MODALITIES:
        gain = rng.uniform(300, 900)  # scanner units differ between subjects and sequences
        level = np.asarray(INTENSITY[m])[idx] * bias * (1 + rng.normal(0, NOISE_SD, shape))
        volume = np.where(brain, np.maximum(np.rint(gain * level), 1), 0)  # brain never 0
        out[m] = volume.astype(np.int16)
    seg = np.zeros(shape, dtype=np.uint8)
    for name, label in SEG_LABEL.items():
        seg[tissue == TISSUES.index(name)] = label
    out["seg"] = seg
    return out


def _write_nifti(path: Path, volume: np.ndarray) -> None:
    import nibabel as nib  # optional heavy dependency: only BraTS needs it

    raw = nib.Nifti1Image(volume, np.eye(4)).to_bytes()
    # nibabel's own .gz writer stamps the current time into the gzip header; mtime=0 keeps the
    # bytes identical across runs.
    path.write_bytes(gzip.compress(raw, compresslevel=6, mtime=0))


def generate_brats(
    out: Path,
    n_hgg: int = 28,
    n_lgg: int = 10,
    shape: tuple[int, int, int] = (40, 40, 24),
    seed: int = 0,
) -> list[tuple[str, str]]:
    """Write the data set under `out`; returns [(subject id, grade)] in id order. Refuses an
    `out` whose grade folders hold subjects this call would not write (stale data would be read)."""
    if n_hgg < 1 or n_lgg < 1:
        raise DataError(f"n_hgg={n_hgg}, n_lgg={n_lgg}: expected at least one subject per grade")
    if len(shape) != 3 or min(shape) < 8:
        raise DataError(f"shape {tuple(shape)}: expected three sizes of at least 8 voxels")
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    out = Path(out)
    grades = ["HGG"] * n_hgg + ["LGG"] * n_lgg
    np.random.default_rng(seed).shuffle(grades)
    subjects = [(subject_id(k + 1), g) for k, g in enumerate(grades)]
    planned = {f"{g}/{s}" for s, g in subjects}
    for g in ("HGG", "LGG"):
        folder = out / g
        stale = (
            sorted(p.name for p in folder.iterdir() if f"{g}/{p.name}" not in planned)
            if folder.is_dir()
            else []
        )
        if stale:
            raise DataError(
                f"{folder}: holds {stale[0]}, which this generation would not write (expected an empty --out)"
            )
    for k, (sid, grade) in enumerate(subjects):
        rng = np.random.default_rng([seed, k])  # per subject: one subject's draws never shift another's
        folder = out / grade / sid
        folder.mkdir(parents=True, exist_ok=True)
        for name, volume in _subject(grade, shape, rng).items():
            _write_nifti(folder / f"{sid}_{name}.nii.gz", volume)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MAPPING_HEADER)
    writer.writerows([grade, "NA", "NA", "NA", sid] for sid, grade in subjects)
    (out / "name_mapping.csv").write_text(buf.getvalue(), encoding="utf-8")
    return subjects


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.synth brats", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--hgg", type=int, default=56, help="HGG subjects (default 56)")
    p.add_argument("--lgg", type=int, default=20, help="LGG subjects (default 20)")
    p.add_argument("--shape", type=int, nargs=3, default=[40, 40, 24], metavar=("X", "Y", "Z"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        generate_brats(a.out, a.hgg, a.lgg, tuple(a.shape), a.seed)
    except KdsweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {a.hgg} HGG + {a.lgg} LGG subjects ({'x'.join(map(str, a.shape))}, seed {a.seed}) to {a.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
