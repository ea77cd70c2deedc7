"""LDAM loss with deferred re-weighting (DRW), for class-imbalanced labels.

Cao, Wei, Gaidon, Arechiga & Ma, NeurIPS 2019, "Learning Imbalanced Datasets with
Label-Distribution-Aware Margin Loss"; reference code kaidic/LDAM-DRW (`losses.py: LDAMLoss`,
the DRW schedule in `cifar_train.py`). With n_c training examples of class c, K classes::

    margins      m_c = C * n_c^(-1/4),  C chosen so that max_c m_c = max_m
    LDAM         L(z, y) = CE( s * (z - m_y * onehot(y)), y; weight w )
                 (the margin is subtracted from the true-class logit only, then all logits
                 are scaled by s; with max_m = 0 and s = 1 it is plain cross-entropy)
    DRW weights  w_c = (1 - beta) / (1 - beta^n_c)   ("effective number", Cui et al. 2019),
                 normalised so that sum_c w_c = K; w = None (uniform) before drw_epoch

Rare classes get larger margins all along, and larger weights only in the late phase: the
paper defers re-weighting so the features are first learnt on the natural distribution.

Epochs are 1-based, as the project's trainer counts them: `drw_weight_at(epoch, drw_epoch, ...)`
is None for epochs 1 .. drw_epoch - 1 and the class-balanced weights from epoch drw_epoch on.
The reference loops over 0-based epochs with `idx = epoch // 160`, i.e. it re-weights from its
161st epoch: its setting 160 is drw_epoch: 161 here. The loss is meant for the label term of
a (distillation) objective; YAML, once wired into the loss registry::

    loss:
      label_loss: ldam_drw
      params: {max_m: 0.5, s: 30, drw_epoch: 10, beta: 0.9999}

Each epoch the trainer calls `criterion.set_weight(drw_weight_at(epoch, ...))`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _counts(cls_num_list: Sequence[int] | Tensor) -> Tensor:
    """Class counts as a float64 vector, refused when empty or with a class never seen: a zero
    count gives an infinite margin and a 0/0 weight (the reference would train on inf/NaN)."""
    n = torch.as_tensor(cls_num_list, dtype=torch.float64).flatten()
    if n.numel() == 0:
        raise ValueError("cls_num_list is empty")
    if bool((n <= 0).any()):
        raise ValueError(f"every class needs at least one training example, got counts {n.tolist()}")
    return n


def ldam_margins(cls_num_list: Sequence[int] | Tensor, max_m: float = 0.5) -> Tensor:
    """m_c proportional to n_c^(-1/4), the rarest class getting max_m. Float32 [K]."""
    if max_m < 0:
        raise ValueError(f"max_m must be >= 0, got {max_m}")
    m = _counts(cls_num_list) ** -0.25
    return (m * (max_m / m.max())).float()


def drw_weights(cls_num_list: Sequence[int] | Tensor, beta: float = 0.9999) -> Tensor:
    """Class-balanced weights (1 - beta) / (1 - beta^n_c), normalised to sum to K. Float32 [K].
    beta = 0 gives all ones; beta -> 1 tends to weights proportional to 1 / n_c."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    n = _counts(cls_num_list)
    # float64: with beta = 0.9999, 1 - beta^n is ~1e-4 for small n and loses digits in fp32.
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n))
    return (w / w.sum() * n.numel()).float()


def drw_weight_at(
    epoch: int, drw_epoch: int, cls_num_list: Sequence[int] | Tensor, beta: float = 0.9999
) -> Tensor | None:
    """The DRW schedule at 1-based `epoch`: None (uniform) before `drw_epoch`, `drw_weights`
    from it on."""
    if epoch < 1 or drw_epoch < 1:
        raise ValueError(f"epochs are 1-based: got epoch={epoch}, drw_epoch={drw_epoch}")
    return None if epoch < drw_epoch else drw_weights(cls_num_list, beta)


class LDAMLoss(nn.Module):
    """forward(logits [B, K], target [B]) -> mean CE of s * (logits - m_y * onehot(y)), weighted
    by `weight` ([K] or None) the way F.cross_entropy weights (a weighted mean). Margins and
    weight are buffers, so they follow the module's device."""

    margins: Tensor
    weight: Tensor | None

    def __init__(
        self,
        cls_num_list: Sequence[int] | Tensor,
        max_m: float = 0.5,
        s: float = 30.0,
        weight: Tensor | None = None,
    ) -> None:
        super().__init__()
        if s <= 0:
            raise ValueError(f"s must be > 0, got {s}")
        self.s = float(s)
        self.register_buffer("margins", ldam_margins(cls_num_list, max_m))
        self.register_buffer("weight", None)
        self.set_weight(weight)

    def set_weight(self, weight: Tensor | None) -> None:
        """Change the class weights (the DRW switch) without rebuilding the loss."""
        if weight is not None:
            weight = torch.as_tensor(weight, dtype=torch.float32, device=self.margins.device)
            if weight.shape != self.margins.shape:
                raise ValueError(f"weight must be [{self.margins.numel()}], got {tuple(weight.shape)}")
        self.weight = weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float()  # fp32 as the other label losses: s = 30 amplifies fp16 rounding
        if logits.shape[-1] != self.margins.numel():
            raise ValueError(f"logits have {logits.shape[-1]} classes, the margins {self.margins.numel()}")
        onehot = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
        shifted = logits - self.margins[target][:, None] * onehot
        return F.cross_entropy(self.s * shifted, target, weight=self.weight)


class LDAMDRWLabel(nn.Module):
    """`loss.label_loss: ldam_drw` as a task kind's label term: one `LDAMLoss` per task (its
    train-split class counts), re-weighted from `drw_epoch` on. The trainer calls
    `start_epoch(epoch, epochs)` before each epoch (1-based); `drw_epoch: null` means at 80 %
    of the run (the reference's 160 of 200 epochs, i.e. epoch int(0.8 * epochs) + 1)."""

    term_name = "ldam"

    def __init__(
        self,
        class_counts: dict[str, tuple[int, ...]],
        max_m: float = 0.5,
        s: float = 30.0,
        drw_epoch: int | None = None,
        beta: float = 0.9999,
    ) -> None:
        super().__init__()
        self.tasks = tuple(class_counts)
        self.counts = {t: tuple(c) for t, c in class_counts.items()}
        self.drw_epoch, self.beta = drw_epoch, beta
        # a list, not a ModuleDict: task names may clash with nn.Module attributes
        self.terms = nn.ModuleList(LDAMLoss(self.counts[t], max_m, s) for t in self.tasks)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        at = self.drw_epoch if self.drw_epoch is not None else int(0.8 * epochs) + 1
        for t, term in zip(self.tasks, self.terms, strict=True):
            w = drw_weight_at(epoch, at, self.counts[t], self.beta)
            term.set_weight(w)  # set_weight moves it to the margins' device

    def forward(self, task: str, logits: Tensor, target: Tensor) -> Tensor:
        return self.terms[self.tasks.index(task)](logits, target)
