"""`concat_mlp`: per-modality LayerNorm, concatenation, a two-layer MLP back to `dim`.

    fused = W_2 Dropout(GELU(W_1 [LN_v(v); LN_t(t)] + b_1)) + b_2

Choices: the hidden width is `dim` (W_1: 2 dim -> dim, W_2: dim -> dim); the separate
LayerNorms put both modalities on the same scale before they are mixed. `layers` and `heads`
are unused; there is no auxiliary loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.fusions.base import FUSIONS, Fusion


@FUSIONS.register("concat_mlp")
class ConcatMLPFusion(Fusion):
    def __init__(
        self, dim: int, layers: int = 1, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.01
    ) -> None:
        super().__init__(dim, layers, heads, dropout, aux_weight)
        self.norm_v = nn.LayerNorm(dim)
        self.norm_t = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.mlp(torch.cat([self.norm_v(v), self.norm_t(t)], dim=-1)), {}
