"""Figures of the X-Lite document, written byte-for-byte reproducibly (reports.plots.save):
per-label ROC curves, τ and α sensitivity, and the loss terms per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reports.plots import figure, save
from reports.xlite_stats import labels_of, weighted_auc


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
    size: tuple,
    font: int,
) -> str:
    """One ROC curve per (name, 0/1 labels, scores), each labelled with its AUC; the chance line."""
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
    return save(fig, path)


def roc_plot(pred: pd.DataFrame, task: str, title: str, path: Path) -> tuple[str, list[str]]:
    """(image link, labels left out): one ROC curve per label with both classes in the test set."""
    curves, skipped = [], []
    for label in labels_of(pred, task):
        y, p = pred[f"{task}/{label}/label"].to_numpy(), pred[f"{task}/{label}/p"].to_numpy(float)
        if len(np.unique(y)) < 2:  # AUC is undefined with one class: no curve, named in the text
            skipped.append(label)
            continue
        curves.append((label, y, p))
    return roc_figure(curves, title, path, "label (test AUC)", (6.5, 5), 6), skipped


def sensitivity_plot(
    values: list[float],
    val: list[float],
    test: list[float],
    chosen: float | None,
    name: str,
    title: str,
    path: Path,
) -> str:
    """Validation and test macro AUC against a KD hyper-parameter; the value chosen on
    validation marked (test is drawn for reading, never for choosing)."""
    fig, ax = figure()
    ax.plot(values, val, marker="o", label="validation AUC")
    ax.plot(values, test, marker="s", label="test AUC")
    if chosen is not None:
        ax.axvline(chosen, color="#C44E52", linestyle=":", label=f"chosen on validation ({name}={chosen:g})")
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.set_xlabel(name)
    ax.set_ylabel("macro AUC")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, path)


def loss_plot(curves: dict[str, dict[int, float]], title: str, path: Path) -> str:
    """The total loss and each weighted term (train/<term>) per epoch."""
    fig, ax = figure()
    for key in sorted(curves, key=lambda k: (k != "train/loss", k)):  # total first, then terms by name
        steps = sorted(curves[key])
        style = {"linewidth": 2, "color": "black"} if key == "train/loss" else {"linewidth": 1}
        ax.plot(steps, [curves[key][s] for s in steps], marker=".", label=key.removeprefix("train/"), **style)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss (weighted term)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, path)
