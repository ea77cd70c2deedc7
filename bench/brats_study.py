"""Figure 12: `make sweep-brats` (sweeps/brats.yaml: DSMIL, ResNet-3D, Swin-3D and a 3-D teacher
for DSMIL, x 5 folds, then the ensembles) wall time against its 20-minute budget, and the peak
memory of a trial per model; see bench/studies.py."""

from __future__ import annotations

from bench.common import Context
from bench.studies import measure_study


def measure(ctx: Context) -> dict:
    return measure_study(
        ctx, "brats", "synthetic-brats", "brats3d-tiny", "brats", "make sweep-brats", target_min=20.0
    )
