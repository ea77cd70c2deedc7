"""Loss terms for multi-label (sigmoid) KD: one independent binary problem per label.

Shapes: logits z [B, K]; targets y in {0, 1} [B, K] (any float/int dtype). Every term is
computed in fp32 and mean-reduced over the B*K elements, so term sizes are per label and do
not grow with K. The softmax convention of `losses.base.kd_kl` does not apply here: labels
are not mutually exclusive, so each label is its own Bernoulli distribution.

The study objective (issue 12, seed note 004, "X-Lite")::

    L = alpha * T^2 * KL_bern(sigmoid(z_t/T) || sigmoid(z_s/T))
        + (1 - alpha) * BCE_pw(z_s, y)
        + lambda * Focal(z_s, y)

This file holds pure functions only; nothing here registers a loss (`import losses` imports
every module in this folder, so it must stay free of side effects).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def pos_weight_from_counts(positives: Sequence[int] | Tensor, negatives: Sequence[int] | Tensor) -> Tensor:
    """Per-label `pos_weight` = negatives / positives, counted on the train split only, [K] fp32.

    Both counts are clamped to at least 1 before dividing. For a label with 0 positives the
    weight multiplies no train example at all, but an infinite weight would still turn
    `inf * 0` into NaN inside BCE, so it becomes `negatives / 1`. For a label with 0
    negatives the weight becomes `1 / positives` instead of 0, which would silence the label.
    """
    pos = torch.as_tensor(positives, dtype=torch.float32)
    neg = torch.as_tensor(negatives, dtype=torch.float32)
    if pos.shape != neg.shape or pos.ndim != 1:
        raise ValueError(f"positives {tuple(pos.shape)} and negatives {tuple(neg.shape)} must be equal 1-d")
    if (pos < 0).any() or (neg < 0).any():
        raise ValueError("label counts must be non-negative")
    return neg.clamp_min(1) / pos.clamp_min(1)


def bce_pos_weight(z: Tensor, y: Tensor, pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy with a per-label weight on the positive term, mean over B*K::

        l = -[pw_k * y * log sigmoid(z) + (1 - y) * log(1 - sigmoid(z))]

    Exactly `F.binary_cross_entropy_with_logits(z, y, pos_weight=pos_weight)` (mean reduction),
    in fp32; `pos_weight=None` is plain BCE. Typically `pos_weight_from_counts` on train.
    """
    pw = None if pos_weight is None else pos_weight.to(device=z.device, dtype=torch.float32)
    return F.binary_cross_entropy_with_logits(z.float(), y.float(), pos_weight=pw, reduction="mean")


def sigmoid_focal(z: Tensor, y: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Sigmoid focal loss (Lin et al., 2017, "Focal Loss for Dense Object Detection"), mean over B*K::

        p_t = p * y + (1 - p) * (1 - y),  p = sigmoid(z)
        FL  = alpha_t * (1 - p_t)^gamma * BCE(z, y),  alpha_t = alpha * y + (1 - alpha) * (1 - y)

    Same convention as `torchvision.ops.sigmoid_focal_loss(z, y, alpha, gamma, reduction="mean")`
    (pinned by a test): alpha weights the positives, and alpha < 0 disables alpha weighting.
    Note that alpha = 0.25 down-weights positives, the opposite of `pos_weight`.
    """
    z, y = z.float(), y.float()
    p = torch.sigmoid(z)
    ce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss.mean()


def multilabel_kd(z_s: Tensor, z_t: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(p_t || p_s) per label for the Bernoulli pair, mean over labels and batch::

        p = sigmoid(z / T)
        KL = p_t * (log p_t - log p_s) + (1 - p_t) * (log(1 - p_t) - log(1 - p_s))

    The teacher is detached. Zero for equal logits. T^2 keeps gradient sizes comparable
    across temperatures, as in Hinton et al. (2015). The logs come from `logsigmoid`, so
    saturated logits (|z| ~ 100) stay finite instead of giving log(0).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    t = temperature
    s = z_s.float() / t
    te = z_t.detach().float() / t
    # log(1 - sigmoid(x)) = logsigmoid(-x)
    log_ps, log_qs = F.logsigmoid(s), F.logsigmoid(-s)
    log_pt, log_qt = F.logsigmoid(te), F.logsigmoid(-te)
    kl = log_pt.exp() * (log_pt - log_ps) + log_qt.exp() * (log_qt - log_qs)
    return kl.mean() * (t * t)


def xlite_objective(
    z_s: Tensor,
    z_t: Tensor | None,
    y: Tensor,
    *,
    alpha: float,
    temperature: float,
    pos_weight: Tensor | None = None,
    focal_weight: float = 0.0,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
) -> dict[str, Tensor]:
    """The seed's multi-label KD objective as named, already-weighted terms; their sum is L::

        L = alpha * multilabel_kd(z_s, z_t, T)            -> "kd"
            + (1 - alpha) * bce_pos_weight(z_s, y, pw)    -> "bce"
            + focal_weight * sigmoid_focal(z_s, y, a, g)  -> "focal"

    Without a teacher (z_t None), or with alpha = 0, there is no "kd" term and BCE has
    weight 1. "focal" is present only when focal_weight > 0. The focal weight is not scaled
    by (1 - alpha): the seed adds it on top, so a hard-label term stays even at alpha = 1.
    YAML::

        loss: {name: xlite_kd, alpha: 0.7, temperature: 4.0,
               params: {focal_weight: 0.5, focal_alpha: 0.25, focal_gamma: 2.0}}
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:  # checked even without a teacher, so a bad config fails in every run
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if focal_weight < 0:
        raise ValueError(f"focal_weight must be >= 0, got {focal_weight}")
    if z_s.shape != y.shape or (z_t is not None and z_t.shape != z_s.shape):
        shapes = f"z_s {tuple(z_s.shape)}, y {tuple(y.shape)}"
        if z_t is not None:
            shapes += f", z_t {tuple(z_t.shape)}"
        raise ValueError(f"logits and targets must have one shape [B, K]: {shapes}")
    a = alpha if z_t is not None else 0.0
    terms = {"bce": (1 - a) * bce_pos_weight(z_s, y, pos_weight)}
    if a > 0:
        terms["kd"] = a * multilabel_kd(z_s, z_t, temperature)
    if focal_weight > 0:
        terms["focal"] = focal_weight * sigmoid_focal(z_s, y, focal_alpha, focal_gamma)
    return terms
