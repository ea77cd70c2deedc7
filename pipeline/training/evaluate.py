"""Evaluation: predictions and cost (size, latency). The metrics are the task kind's
(tasks/multiclass.py, tasks/multilabel.py); every kind gives ``avg_f1`` and ``<task>/f1``,
``<task>/auc``, logged under a split prefix such as ``test/``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tasks import Predictions, TaskKind


def to_device(batch: dict, device: torch.device) -> dict:
    return {
        k: (
            {t: x.to(device, non_blocking=True) for t, x in v.items()}
            if isinstance(v, dict)
            else v.to(device, non_blocking=True)
        )
        for k, v in batch.items()
    }


def first_sample(batch: dict) -> dict:
    """The batch cut to its first sample (batch size 1), nested task dicts included."""
    return {k: ({t: x[:1] for t, x in v.items()} if isinstance(v, dict) else v[:1]) for k, v in batch.items()}


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context on CPU (fp32 there keeps runs reproducible)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.inference_mode()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, kind: TaskKind) -> Predictions:
    """Probabilities (the kind's: softmax or sigmoid) and targets of every sample in `loader`."""
    was_training = model.training
    model.eval()
    probs: dict[str, list] = {}
    labels: dict[str, list] = {}
    index = []
    for batch in loader:
        batch = to_device(batch, device)
        with autocast(device):
            out = model(batch)
        for task, logits in out.logits.items():
            probs.setdefault(task, []).append(kind.probabilities(logits).cpu().numpy())
            labels.setdefault(task, []).append(batch["labels"][task].cpu().numpy())
        index.append(batch["index"].cpu().numpy())
    model.train(was_training)
    return Predictions(
        {t: np.concatenate(p) for t, p in probs.items()},
        {t: np.concatenate(y) for t, y in labels.items()},
        np.concatenate(index),
    )


@torch.inference_mode()
def latency_ms(
    model: nn.Module, batch: dict, device: torch.device, runs: int = 50, warmup: int = 10
) -> dict[str, float]:
    """Per-sample latency at batch 1 on `device`: `warmup` untimed passes, then the median and
    p90 of `runs` timed passes (CUDA synchronised around each)."""
    model.eval()
    one = to_device(first_sample(batch), device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        with autocast(device):
            model(one)
    times = []
    for _ in range(max(runs, 1)):
        sync()
        start = time.perf_counter()
        with autocast(device):
            model(one)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "latency_ms": statistics.median(times),
        "latency_p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
    }


def confusion_figure(cm: np.ndarray, classes: tuple[str, ...], title: str):
    """A matplotlib figure of a confusion matrix (rows: true, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(classes), 1.0 + 0.6 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
