"""ROC figures: per label of a multilabel run (X-Lite), per fold model (MIL), per model and
ensemble (BraTS); each curve labelled with its AUC, the chance line dashed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.plots.render import draw, figure
from reports.resample import labels_of, weighted_auc


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) at every distinct threshold, from (0, 0): the
    points of sklearn's roc_curve(drop_intermediate=False), without importing sklearn (seconds)."""
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order] == 1
    last = np.r_[np.flatnonzero(np.diff(ps)), len(ps) - 1]  # the last image of each equal score
    tps = np.cumsum(ys)[last]
    fps = last + 1 - tps
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def roc_figure(
    curves: list[tuple[str, np.ndarray, np.ndarray]],
    title: str,
    path: Path,
    legend: str,
    size: tuple[float, float],
    font: int,
) -> str:
    """One ROC curve per (name, 0/1 labels, scores), each labelled with its AUC; the chance line."""
    return draw(_roc_figure, path, curves, title, legend, size, font)


def _roc_figure(
    curves: list[tuple[str, np.ndarray, np.ndarray]],
    title: str,
    legend: str,
    size: tuple[float, float],
    font: int,
) -> Any:
    fig, ax = figure(*size)
    for name, y, p in curves:
        fpr, tpr = roc_points(y, p)
        auc = weighted_auc(y, p, np.ones((1, len(y))))[0]
        ax.plot(fpr, tpr, linewidth=1, label=f"{name} ({auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=font, loc="lower right", title=legend, title_fontsize=font)
    return fig


def roc_labels(pred: pd.DataFrame, task: str, title: str, path: Path) -> tuple[str, list[str]]:
    """(image link, labels left out): one ROC curve per label with both classes in the test set."""
    curves, skipped = [], []
    for label in labels_of(pred, task):
        y, p = pred[f"{task}/{label}/label"].to_numpy(), pred[f"{task}/{label}/p"].to_numpy(float)
        if len(np.unique(y)) < 2:  # AUC is undefined with one class: no curve, named in the text
            skipped.append(label)
            continue
        curves.append((label, y, p))
    return roc_figure(curves, title, path, "label (test AUC)", (6.5, 5), 6), skipped


def roc_folds(curves: list[tuple[int, np.ndarray, np.ndarray]], title: str, path: Path) -> str:
    """`curves`: (fold, 0/1 labels, positive-class scores) per fold model on the same test bags."""
    named = [(f"fold {fold}", y, p) for fold, y, p in curves]
    return roc_figure(named, title, path, "fold model (test AUC)", (5.5, 4.5), 7)
