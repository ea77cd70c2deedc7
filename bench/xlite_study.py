"""Figure 10: `make sweep-xlite` (sweeps/xlite.yaml: 22 trials in 7 phases; 21 in 6 before the
kd_control phase) wall time; see bench/studies.py."""

from __future__ import annotations

from bench.common import Context
from bench.studies import measure_study


def measure(ctx: Context) -> dict:
    return measure_study(ctx, "xlite", "synthetic-chestxray", "xlite-tiny", "chestxray", "make sweep-xlite")
