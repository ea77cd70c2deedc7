"""Figure 11: `make sweep-mil` (sweeps/mil.yaml: 3 loss options and KD x 5 folds) wall time and
the peak memory of a trial; see bench/studies.py."""

from __future__ import annotations

from bench.common import Context
from bench.studies import measure_study


def measure(ctx: Context) -> dict:
    return measure_study(ctx, "mil", "synthetic-brats", "mil-tiny", "brats", "make sweep-mil")
