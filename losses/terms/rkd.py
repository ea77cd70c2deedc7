"""`rkd_distance`, `rkd_angle`: Relational Knowledge Distillation (Park et al., CVPR 2019),
on one feature (default the fused one)::

    psi_D(x_i, x_j)      = ||x_i - x_j||_2 / mu,  mu = mean of ||x_k - x_l|| over pairs k != l
    psi_A(x_i, x_j, x_k) = < (x_i - x_j)/||x_i - x_j||, (x_k - x_j)/||x_k - x_j|| >
    rkd_distance = mean over ordered pairs i != j  of smoothL1(psi_D(s_i, s_j), psi_D(t_i, t_j))
    rkd_angle    = mean over distinct (i, j, k)    of smoothL1(psi_A(s...), psi_A(t...))

Smooth-L1 is PyTorch's (Huber, delta 1). No projection: relations are defined in each network's
own space. Both sides L2-normalised per sample first (`params.normalize`, default true); the
teacher's relations are constants. Below 2 (distance) or 3 (angle) samples the term is an exact
zero that keeps a gradient path. The paper weights them 25 and 50 (`loss.name: rkd`). fp32.
YAML::

    - {term: rkd_distance, weight: 25.0}
    - {term: rkd_angle, weight: 50.0, params: {feature: fused, normalize: true}}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.terms.base import SIDES, TERMS, FeatureTerm

_EPS = 1e-12


def normalized_distances(x: Tensor) -> Tensor:
    """[B, B] Euclidean distances divided by their mean over pairs i != j (diagonal 0)."""
    sq = x.pow(2).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * x @ x.t()
    off = ~torch.eye(len(x), dtype=torch.bool, device=x.device)
    d = d2.clamp_min(_EPS).sqrt() * off  # clamp: no infinite sqrt gradient at 0 distance
    mu = d.sum() / off.sum().clamp_min(1)
    return d / mu.clamp_min(_EPS)


def angles(x: Tensor) -> Tensor:
    """[B, B, B] cosines of the angle at x_j between x_i and x_k (0 where i == j or k == j)."""
    e = F.normalize(x[None, :, :] - x[:, None, :], p=2, dim=2, eps=_EPS)  # e[j, i] = unit(x_i - x_j)
    return torch.bmm(e, e.transpose(1, 2))


def _relational(relation, s: Tensor, t: Tensor, order: int) -> Tensor:
    """Smooth-L1 between the student's and the (constant) teacher's `relation` tensors, summed
    and divided by the number of ordered `order`-tuples of distinct samples (the degenerate
    entries are 0 on both sides); an exact zero with a gradient path below `order` samples."""
    b = len(s)
    if b < order:
        return s.sum() * 0.0
    with torch.no_grad():
        target = relation(t)
    tuples = math.prod(b - i for i in range(order))
    return F.smooth_l1_loss(relation(s), target, reduction="sum") / tuples


def rkd_distance(s: Tensor, t: Tensor) -> Tensor:
    """Mean over ordered pairs i != j."""
    return _relational(normalized_distances, s, t, 2)


def rkd_angle(s: Tensor, t: Tensor) -> Tensor:
    """Mean over triplets of distinct i, j, k."""
    return _relational(angles, s, t, 3)


@dataclass(frozen=True)
class RKDParams:
    feature: Literal["image", "text", "fused"] = "fused"
    normalize: bool = True  # L2-normalise each sample's features first (both sides)


class _Relational(FeatureTerm):
    Params = RKDParams
    part = staticmethod(rkd_distance)
    symbol = "RKD_dist"

    def compare(self, s: Tensor, t: Tensor) -> Tensor:
        if self.p.normalize:
            s, t = F.normalize(s, dim=-1), F.normalize(t, dim=-1)
        return self.part(s, t)

    def text(self) -> str:
        return f"{self.symbol}({SIDES[self.p.feature]})"


@TERMS.register("rkd_distance")
class RKDDistance(_Relational):
    pass


@TERMS.register("rkd_angle")
class RKDAngle(_Relational):
    part = staticmethod(rkd_angle)
    symbol = "RKD_angle"
