"""Synthetic datasets, one generator per on-disk layout, so tests, demos and benchmarks run
without the real data:

- `medpix`: a MedPix-like set in the MedPix-2.0 format, and `wound` a Wound-1-0-like set in the
  group's CSV layout (synth/wound.py, with the same cues);
- `chestxray`: an NIH ChestX-ray14-like set (pipeline.data.chestxray's layout);
- `brats`: a BraTS 2019-like MRI set (pipeline.data.brats's layout, MIL bags).

    python -m pipeline.synth {medpix,wound,chestxray,brats} --out DIR [...]

`main` here is that command line (pipeline/synth.py runs it); each generator module is imported
only for its own kind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def generate(kind_name: str, out: Path, n: dict[str, int], image_size: int = 64, seed: int = 0) -> None:
    """Write the synthetic `kind_name` (medpix or wound) to `out` in its real layout: `wound` in
    the group's CSV layout (synth/wound.py), `medpix` in MedPix-2.0's; deterministic per seed.
    What make data, the test fixtures and the benchmarks call."""
    if kind_name == "wound":
        from pipeline.data.synth.wound import generate_wound

        return generate_wound(out, n, image_size, seed)
    from pipeline.data.synth.medpix import generate as generate_medpix

    return generate_medpix(kind_name, out, n, image_size, seed)


def main(argv: list[str] | None = None) -> int:
    """Generate one synthetic dataset; the exit status. `chestxray` and `brats` take their
    generator's own options (see `python -m pipeline.synth chestxray --help`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["chestxray"]:  # the NIH ChestX-ray14 layout has a generator of its own
        from pipeline.data.synth.chestxray import main as chestxray

        return chestxray(argv[1:])
    if argv[:1] == ["brats"]:  # the BraTS 2019 MRI layout (MIL bags) has a generator of its own
        from pipeline.data.synth.brats import main as brats

        return brats(argv[1:])
    from pipeline.data.synth.medpix import KINDS

    p = argparse.ArgumentParser(
        prog="python -m pipeline.synth", description="Synthetic datasets in the published on-disk layouts."
    )
    p.add_argument("kind", choices=[*sorted(KINDS), "chestxray", "brats"])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--n-train", type=int, default=1200)
    p.add_argument("--n-dev", type=int, default=300)
    p.add_argument("--n-test", type=int, default=300)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for name in ("n_train", "n_dev", "n_test", "image_size"):
        if getattr(a, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    generate(a.kind, a.out, {"train": a.n_train, "dev": a.n_dev, "test": a.n_test}, a.image_size, a.seed)
    print(f"wrote {a.kind} ({a.n_train}/{a.n_dev}/{a.n_test} train/dev/test, {a.image_size}px) to {a.out}")
    return 0
