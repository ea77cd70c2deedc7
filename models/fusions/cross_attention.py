"""`cross_attention`: a pooled query attends over the two typed modality tokens.

    X   = [v + e_img; t + e_txt]                      (2 tokens, e_* learned type embeddings)
    x_0 = (v + t) / 2
    block k (k = 1..layers), each with its own weights:
        q   = LN_k(x_{k-1})
        z   = q + MHA_k(q, X, X)                      (`heads` heads, batch_first)
        x_k = z + FFN_k(LN'_k(z))                     FFN = Linear(dim, 4 dim)-GELU-Dropout-Linear
    fused = x_layers

For layers=1 this is exactly q = LN((v+t)/2), z = q + MHA(q, X, X), z + FFN(LN(z)). The query
of block k+1 is the output of block k (normalised by that block's LN); keys/values are always
the typed modality tokens X (not normalised, as in the formula). Type embeddings start at
N(0, 0.02^2). Dropout applies to the attention weights and inside the FFN. No auxiliary loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.fusions.base import FUSIONS, Fusion


class _CrossBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim)
        )

    def forward(self, x: Tensor, tokens: Tensor) -> Tensor:
        q = self.norm_q(x).unsqueeze(1)  # [B, 1, dim]
        z = q + self.attn(q, tokens, tokens, need_weights=False)[0]
        z = z.squeeze(1)
        return z + self.ffn(self.norm_ffn(z))


@FUSIONS.register("cross_attention")
class CrossAttentionFusion(Fusion):
    def __init__(
        self, dim: int, layers: int = 1, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.01
    ) -> None:
        super().__init__(dim, layers, heads, dropout, aux_weight)
        self.type_embed = nn.Parameter(torch.randn(2, dim) * 0.02)
        self.blocks = nn.ModuleList(_CrossBlock(dim, heads, dropout) for _ in range(layers))

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        tokens = torch.stack([v, t], dim=1) + self.type_embed  # [B, 2, dim]
        x = (v + t) / 2
        for block in self.blocks:
            x = block(x, tokens)
        return x, {}
