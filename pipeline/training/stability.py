"""Training-stability evidence of one run, measured from its per-epoch history (issue 13: the
seed rejected losses for "loss collapsing to ~0.001 or exploding > 100" and "validation AUC
fluctuating 0.30-0.90 across consecutive epochs"; these are the numbers that say so).

    stability/epochs               epochs trained
    stability/max_abs_delta_auc    max_e |AUC_dev(e) - AUC_dev(e-1)|          (0 for one epoch)
    stability/max_auc_drop         max_e (AUC_dev(e-1) - AUC_dev(e)), at least 0: a fall, which a
                                   swing has and a learning curve's rise has not
    stability/std_auc_last_half    std of AUC_dev over the last ceil(E/2) epochs (population)
    stability/train_loss_min, stability/train_loss_max   of the per-epoch mean training loss
    stability/collapsed_epochs     epochs whose dev predictions were all one class (dev/collapsed)
    stability/nonfinite            1 if a non-finite value appears in the history, else 0

The AUC is the monitored task's dev AUC (`<task>/auc`), or the dev `avg_auc` / monitor when the
monitor is not an AUC. Reports apply their stability rule to these numbers.
"""

from __future__ import annotations

import math

import numpy as np


def stability_metrics(history: list[dict[str, float]], monitor: str) -> dict[str, float]:
    if not history:
        return {}
    task = monitor.rpartition("/")[0]
    key = f"dev/{task}/auc" if task and f"dev/{task}/auc" in history[0] else f"dev/{monitor}"
    auc = np.array([h.get(key, math.nan) for h in history], dtype=float)
    loss = np.array([h.get("train/loss", math.nan) for h in history], dtype=float)
    half = auc[len(auc) // 2 :]
    values = [v for h in history for v in h.values()]
    return {
        "stability/epochs": float(len(history)),
        "stability/max_abs_delta_auc": float(np.nanmax(np.abs(np.diff(auc)))) if len(auc) > 1 else 0.0,
        "stability/max_auc_drop": float(max(np.nanmax(-np.diff(auc)), 0.0)) if len(auc) > 1 else 0.0,
        "stability/std_auc_last_half": float(np.nanstd(half)) if len(half) else 0.0,
        "stability/train_loss_min": float(np.nanmin(loss)),
        "stability/train_loss_max": float(np.nanmax(loss)),
        "stability/collapsed_epochs": float(sum(h.get("dev/collapsed", 0.0) for h in history)),
        # a NaN metric (an AUC with one class present) is not a failure; a NaN or inf loss is
        "stability/nonfinite": float(not np.isfinite(loss).all() or any(math.isinf(v) for v in values)),
    }
