"""Synthetic MedPix-like datasets in the MedPix-2.0 on-disk format, and the image and text cues
that the Wound-like set (the group's CSV layout: synth/wound.py) shares.

    python -m pipeline.synth {medpix,wound} --out DIR [--n-train N --n-dev N --n-test N
                                                       --image-size PX --seed S]

(the command line: pipeline.data.synth's `main`)

The label signal is split between the modalities so that fusion matters. For every sample and
task, one of three cue modes is drawn:
  - image (35 %): the image shows the class pattern; the text says nothing about this task;
  - text  (35 %): the text names the class; the image shows no pattern for this task;
  - both  (30 %): the image shows class a, the text a code b ("protocol <b>" for task 1,
    "series <b>" for task 2), and the label is (a + b) mod K: neither modality alone tells it.
Image cues: task 1 is the background brightness (one level per class; without the cue the level
is drawn from the whole range), task 2 a bright blob whose position on a ring encodes the class. Then 8 % of labels are flipped to another class
(label noise), so no model reaches F1 1.0. Same seed -> same bytes (PNG and JSON).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

MODES = ("image", "text", "both")
MODE_P = (0.35, 0.35, 0.30)
LABEL_NOISE = 0.08


@dataclass(frozen=True)
class Kind:
    fields: tuple[str, str]  # label fields of task 1 and task 2
    classes: tuple[tuple[str, ...], tuple[str, ...]]
    words: tuple[dict[str, str], dict[str, str]]  # class -> phrase naming it in text
    channels: int
    prefix: str


MEDPIX = Kind(
    fields=("Type", "Location Category"),
    classes=(
        ("CT", "MR"),
        ("Head", "Thorax", "Abdomen", "Spine and Muscles", "Reproductive and Urinary System"),
    ),
    words=(
        {"CT": "computed tomography with attenuation values", "MR": "T2 weighted MRI sequence"},
        {
            "Head": "brain parenchyma and skull",
            "Thorax": "lung fields and mediastinum",
            "Abdomen": "liver and bowel loops",
            "Spine and Muscles": "vertebral bodies and paraspinal muscles",
            "Reproductive and Urinary System": "kidneys bladder and pelvis",
        },
    ),
    channels=1,
    prefix="SYNMPX",
)
# The research group's Wound-1-0 classes; written in their CSV layout by synth/wound.py.
WOUND = Kind(
    fields=("type", "severity"),
    classes=(
        (
            "Pressure",
            "Diabetic",
            "Venous",
            "Surgical",
            "Bruises",
            "Burn",
            "Abrasion",
            "Laceration",
            "Normal",
            "Cut",
        ),
        ("Severe", "Moderate", "Mild"),
    ),
    words=(
        {
            "Pressure": "sacral pressure injury from immobility",
            "Diabetic": "neuropathic foot ulcer in a diabetic patient",
            "Venous": "venous leg ulcer above the ankle",
            "Surgical": "incision site after an operation",
            "Bruises": "bruising and discoloration without an open wound",
            "Burn": "thermal injury with blistering",
            "Abrasion": "superficial scrape of the skin",
            "Laceration": "irregular tear of the skin",
            "Normal": "intact healthy skin",
            "Cut": "clean straight cut from a sharp edge",
        },
        {"Severe": "deep with necrosis", "Moderate": "partial thickness", "Mild": "superficial and small"},
    ),
    channels=3,
    prefix="wound",
)
KINDS = {"medpix": MEDPIX, "wound": WOUND}
CODES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")
FILLER = (
    "Follow-up study.",
    "Image obtained at presentation.",
    "Compare with prior examination.",
    "No acute distress reported.",
    "Findings discussed with the team \u2013 see note.",  # unicode en dash on purpose
    "Patient stable.",
    "Referred by primary care.",
)


def _level(k: int, n: int) -> float:
    """Task 1's image cue: the background brightness, one level per class."""
    return 0.12 + 0.5 * k / max(n - 1, 1)


def _blob(size: int, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Task 2's image cue: a bright blob whose position on a ring encodes the class."""
    angle = 2 * math.pi * k / n
    cx, cy = 0.5 + 0.28 * math.cos(angle), 0.5 + 0.28 * math.sin(angle)
    cx, cy = cx + rng.normal(0, 0.02), cy + rng.normal(0, 0.02)
    yy, xx = np.mgrid[0:size, 0:size] / size
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 0.09**2))


def _image(kind: Kind, shown: list[int | None], size: int, rng: np.random.Generator) -> Image.Image:
    # Without a task-1 cue the brightness is drawn from the whole range: it tells nothing.
    n1 = len(kind.classes[0])
    level = _level(shown[0], n1) + rng.normal(0, 0.02) if shown[0] is not None else rng.uniform(0.1, 0.64)
    img = level + rng.normal(0, 0.05, (size, size))
    if shown[1] is not None:
        img += 0.35 * _blob(size, shown[1], len(kind.classes[1]), rng)
    img = np.clip(img, 0, 1)
    if kind.channels == 3:  # a skin-like tint; the cues stay in intensity
        tint = np.array([1.0, 0.75, 0.65]) * rng.uniform(0.95, 1.0)
        arr = (img[..., None] * tint * 255).astype(np.uint8)
        return Image.fromarray(arr)
    return Image.fromarray((img * 255).astype(np.uint8))


def _sample(
    kind: Kind, rng: np.random.Generator, size: int, given: tuple[int, int] | None = None
) -> tuple[list[str], str, Image.Image]:
    """One sample's labels, caption and image. `given`: the labels are fixed (the wound
    generator draws them with the real class shares) and the noise goes into the cues instead
    (a cue shows another class), so the shares stay exact; without it (MedPix) labels are drawn
    uniformly and then flipped, in the draw order the pinned synthetic sets were made with."""
    labels, shown, phrases = [], [], []
    for task in (0, 1):
        classes = kind.classes[task]
        n = len(classes)
        y = int(rng.integers(n)) if given is None else given[task]
        cue = y
        if given is not None and rng.random() < LABEL_NOISE:
            cue = int((y + rng.integers(1, n)) % n)
        mode = MODES[rng.choice(3, p=MODE_P)]
        if mode == "image":
            shown.append(cue)
        elif mode == "text":
            shown.append(None)
            phrases.append(kind.words[task][classes[cue]])
        else:
            b = int(rng.integers(n))
            shown.append((cue - b) % n)
            phrases.append(f"{('protocol', 'series')[task]} {CODES[b]}")
        if given is None and rng.random() < LABEL_NOISE:
            y = int((y + rng.integers(1, n)) % n)
        labels.append(classes[y])
    rng.shuffle(phrases)
    filler = FILLER[int(rng.integers(len(FILLER)))]
    caption = " ".join([*phrases, filler]) if phrases else filler
    return labels, caption, _image(kind, shown, size, rng)


def generate(kind_name: str, out: Path, n: dict[str, int], image_size: int = 64, seed: int = 0) -> None:
    """Write the dataset to `out` in the MedPix-2.0 layout (splitted_dataset/ and images/);
    deterministic per seed. Callers go through pipeline.data.synth.generate, which writes each
    kind in its real layout (`wound` in the group's CSV layout: synth/wound.py)."""
    kind = KINDS[kind_name]
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "splitted_dataset").mkdir(parents=True, exist_ok=True)
    uid_list: dict[str, list[str]] = {}
    case_no = 0
    for split in ("train", "dev", "test"):
        descriptions, cases = [], []
        while len(descriptions) < n[split]:
            case_no += 1
            uid = f"{kind.prefix}{case_no:05d}"
            age, sex = int(rng.integers(18, 90)), ("female", "male")[int(rng.integers(2))]
            images = []
            for _ in range(min(int(rng.integers(1, 4)), n[split] - len(descriptions))):
                labels, caption, img = _sample(kind, rng, image_size)
                stem = f"{uid}_synpic{len(descriptions) + 1:05d}{split[0]}"
                img.save(out / "images" / f"{stem}.png", optimize=False)
                images.append(stem)
                descriptions.append(
                    {
                        kind.fields[0]: labels[0],
                        "U_id": uid,
                        "image": stem,
                        "Description": {
                            "ACR Codes": "-1.-1",
                            "Age": str(age),
                            "Caption": caption,
                            "Figure Part": None,
                            "Plane": "Axial",
                            "Sex": sex,
                        },
                        kind.fields[1]: labels[1],
                    }
                )
            history = f"{age} yo {sex}. {FILLER[int(rng.integers(len(FILLER)))]}"
            cases.append({"U_id": uid, "Images": images, "Case": {"History": history, "Findings": None}})
        uid_list[split] = [c["U_id"] for c in cases]
        parts = {split: (descriptions, cases)}
        if split == "train":  # train = train_1 + train_2, split by case as in MedPix-2.0
            half = set(uid_list[split][: len(cases) // 2])
            parts["train_1"] = (
                [d for d in descriptions if d["U_id"] in half],
                [c for c in cases if c["U_id"] in half],
            )
            parts["train_2"] = (
                [d for d in descriptions if d["U_id"] not in half],
                [c for c in cases if c["U_id"] not in half],
            )
        for name, (descs, cs) in parts.items():
            _write_jsonl(out / "splitted_dataset" / f"descriptions_{name}.jsonl", descs)
            _write_jsonl(out / "splitted_dataset" / f"data_{name}.jsonl", cs)
    (out / "splitted_dataset" / "uid_list.json").write_text(json.dumps(uid_list))


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
