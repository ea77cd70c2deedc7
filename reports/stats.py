"""Numbers behind honest comparisons: mean +- std over seeds, a paired bootstrap of the test
F1 difference from saved predictions, chance level, the Pareto front."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score


def fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def mean_std(values, digits: int = 4) -> str:
    """One value as is; two or more as mean ± std (sample std)."""
    v = [float(x) for x in values if x is not None and not np.isnan(x)]
    if not v:
        return "n/a"
    if len(v) == 1:
        return fmt(v[0], digits)
    return f"{fmt(float(np.mean(v)), digits)} ± {fmt(float(np.std(v, ddof=1)), digits)}"


def tasks_of(pred: pd.DataFrame) -> list[str]:
    return sorted({c.split("/")[0] for c in pred.columns if c.endswith("/label")})


def _avg_f1(pred: pd.DataFrame, rows: np.ndarray, tasks: list[str]) -> float:
    return float(
        np.mean(
            [
                f1_score(
                    pred[f"{t}/label"].to_numpy()[rows],
                    pred[f"{t}/pred"].to_numpy()[rows],
                    average="macro",
                    zero_division=0,
                )
                for t in tasks
            ]
        )
    )


def paired_bootstrap(
    a: pd.DataFrame, b: pd.DataFrame, n: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Test avg macro-F1 of a minus b, and its 95 % percentile interval from resampling the same
    test samples for both (paired: aligned by dataset index)."""
    a, b = a.sort_values("index").reset_index(drop=True), b.sort_values("index").reset_index(drop=True)
    if not np.array_equal(a["index"].to_numpy(), b["index"].to_numpy()):
        raise ValueError("the two runs were tested on different samples")
    tasks = tasks_of(a)
    rng = np.random.default_rng(seed)
    all_rows = np.arange(len(a))
    diff = _avg_f1(a, all_rows, tasks) - _avg_f1(b, all_rows, tasks)
    draws = [
        _avg_f1(a, rows, tasks) - _avg_f1(b, rows, tasks)
        for rows in (rng.integers(0, len(a), len(a)) for _ in range(n))
    ]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return diff, float(lo), float(hi)


def pareto(latency: list[float], f1: list[float]) -> list[bool]:
    """True where no other point is at least as fast and at least as good, and better in one."""
    out = []
    for i, (li, fi) in enumerate(zip(latency, f1, strict=True)):
        dominated = any(
            lj <= li and fj >= fi and (lj < li or fj > fi)
            for j, (lj, fj) in enumerate(zip(latency, f1, strict=True))
            if j != i
        )
        out.append(not dominated)
    return out
