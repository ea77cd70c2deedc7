"""`gated`: the gated multimodal unit (Arevalo et al. 2017) with a vector gate.

    h_v = tanh(W_v v),   h_t = tanh(W_t t),   g = sigmoid(W_g [v; t]) in (0, 1)^dim
    fused = g * h_v + (1 - g) * h_t

so every output dimension is a convex combination of h_v and h_t (and lies in (-1, 1)). The
linear maps carry biases. `layers`, `heads` and `dropout` are unused; no auxiliary loss.
`components(v, t)` returns (h_v, h_t, g) for inspection.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.fusions.base import FUSIONS, Fusion


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    def __init__(
        self, dim: int, layers: int = 1, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.01
    ) -> None:
        super().__init__(dim, layers, heads, dropout, aux_weight)
        self.w_v = nn.Linear(dim, dim)
        self.w_t = nn.Linear(dim, dim)
        self.w_g = nn.Linear(2 * dim, dim)

    def components(self, v: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h_v = torch.tanh(self.w_v(v))
        h_t = torch.tanh(self.w_t(t))
        g = torch.sigmoid(self.w_g(torch.cat([v, t], dim=-1)))
        return h_v, h_t, g

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        h_v, h_t, g = self.components(v, t)
        return g * h_v + (1 - g) * h_t, {}
