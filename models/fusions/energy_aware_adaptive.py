"""`energy_aware_adaptive`: a cheap path for every sample, an expensive refinement only where a
per-sample halting gate asks for it.

    cheap      c = W_c (v + t) / 2 + b_c
    gate       p = sigmoid(w_g . [v; t] + b_g) in (0, 1)     (probability of running the expensive path)
    expensive  x = W_in [LN_v(v); LN_t(t)] + b_in, then `layers` residual blocks x <- x + M(LN(x)),
               M = Linear(dim, 2 dim)-GELU-Dropout-Linear(2 dim, dim);   E(v, t) = x
    fused      = c + s * E(v, t)
    train      s = 1[p > 0.5] + p - sg(p)        (straight-through: value exactly 0 or 1, gradient of p)
    eval       s = 1[p > 0.5]; E runs only on the selected samples, the others return exactly c
    aux        energy = aux_weight * cost * mean_b(p)

`cost` is the relative cost constant: the fraction of this module's per-sample multiply-adds
(weight matrices only) spent in the expensive path, cost = (2 + 4 layers) dim^2 /
((3 + 4 layers) dim^2 + 2 dim), about 0.86 for layers=1, i.e. the share of compute a skip
saves. Training runs E on the whole batch (the gate's gradient dL/dp = <dL/dfused, E> needs it);
only eval skips the work. The energy term is returned in eval too (same formula, deterministic),
for logging; the trainer adds aux losses only in training. `heads` is unused.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.fusions.base import FUSIONS, Fusion


class _Expensive(nn.Module):
    def __init__(self, dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.norm_v, self.norm_t = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.proj = nn.Linear(2 * dim, dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
            for _ in range(layers)
        )

    def forward(self, v: Tensor, t: Tensor) -> Tensor:
        x = self.proj(torch.cat([self.norm_v(v), self.norm_t(t)], dim=-1))
        for norm, mlp in zip(self.norms, self.mlps, strict=True):
            x = x + mlp(norm(x))
        return x


@FUSIONS.register("energy_aware_adaptive")
class EnergyAwareAdaptiveFusion(Fusion):
    def __init__(
        self, dim: int, layers: int = 1, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.01
    ) -> None:
        super().__init__(dim, layers, heads, dropout, aux_weight)
        self.cheap = nn.Linear(dim, dim)
        self.gate = nn.Linear(2 * dim, 1)
        self.expensive = _Expensive(dim, layers, dropout)
        expensive_macs = (2 + 4 * layers) * dim * dim
        self.cost = expensive_macs / (expensive_macs + dim * dim + 2 * dim)

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.cheap((v + t) / 2)
        p = torch.sigmoid(self.gate(torch.cat([v, t], dim=-1)).float()).squeeze(-1)  # [B]
        hard = p > 0.5
        if self.training:
            s = hard.to(p.dtype) + (p - p.detach())
            fused = c + s.to(c.dtype).unsqueeze(-1) * self.expensive(v, t)
        else:
            fused = c.clone()
            idx = hard.nonzero().squeeze(1)
            if idx.numel():
                fused[idx] = (c[idx] + self.expensive(v[idx], t[idx])).to(fused.dtype)
        return fused, {"energy": self.aux_weight * self.cost * p.mean()}
