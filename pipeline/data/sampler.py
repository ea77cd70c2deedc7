"""Class-balanced sampling: draw training examples with probability inversely proportional to
the size of their class, so each class is drawn about equally often (data-level balancing,
the alternative to loss-level re-weighting such as LDAM-DRW).

    w_i = 1 / n_{y_i}     (n_c: number of examples of class c)

so every class has total weight 1 and is drawn with probability 1 / K per draw. Draws are with
replacement (rare examples repeat within an epoch), `num_samples` per epoch (default: the
dataset size). The sampler owns a torch.Generator seeded with `seed`: the same seed gives the
same sequence of epochs, independent of the global RNG and of other samplers. Usage::

    DataLoader(train_set, batch_size=32, sampler=weighted_sampler(train_labels, seed=cfg.seed))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import WeightedRandomSampler


def sampler_weights(labels: Sequence[int] | Tensor | np.ndarray) -> Tensor:
    """Per-example weights 1 / n_{y_i} (float64 [N]). Labels are any integer class ids, not
    necessarily 0..K-1 nor all present: counts are taken over the ids that occur."""
    y = labels.detach().cpu() if isinstance(labels, Tensor) else torch.as_tensor(np.asarray(labels))
    y = y.flatten()
    if y.numel() == 0:
        raise ValueError("no labels: cannot build a sampler over an empty training set")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}")
    _, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
    return 1.0 / counts.to(torch.float64)[inverse]


def weighted_sampler(
    labels: Sequence[int] | Tensor | np.ndarray, seed: int, num_samples: int | None = None
) -> WeightedRandomSampler:
    """Inverse-class-frequency WeightedRandomSampler (replacement=True), deterministic per seed."""
    weights = sampler_weights(labels)
    n = len(weights) if num_samples is None else int(num_samples)
    if n < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    generator = torch.Generator().manual_seed(int(seed))
    return WeightedRandomSampler(weights, num_samples=n, replacement=True, generator=generator)
