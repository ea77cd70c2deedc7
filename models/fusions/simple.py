"""`simple`: the plainest baseline, one linear map of the concatenated modalities.

    fused = W [v; t] + b,    W in R^{dim x 2 dim}

`layers`, `heads` and `dropout` are accepted (every fusion is built the same way) and unused;
there is no auxiliary loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.fusions.base import FUSIONS, Fusion


@FUSIONS.register("simple")
class SimpleFusion(Fusion):
    def __init__(
        self, dim: int, layers: int = 1, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.01
    ) -> None:
        super().__init__(dim, layers, heads, dropout, aux_weight)
        self.proj = nn.Linear(2 * dim, dim)

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.proj(torch.cat([v, t], dim=-1)), {}
