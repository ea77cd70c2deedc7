"""`film`: text conditions vision through stacked FiLM + residual-MLP blocks.

    h_0 = v
    block k (k = 1..layers), each with its own weights:
        gamma_k = 1 + G_k t,   beta_k = B_k t          (G_k, B_k: Linear(dim, dim))
        u       = gamma_k * h_{k-1} + beta_k           (FiLM)
        h_k     = u + M_k(LN_k(u))                     M = Linear(dim, 2 dim)-GELU-Dropout-Linear
    fused = h_layers

Choices: G_k, B_k (weights and biases) and the last Linear of every M_k are zero-initialised,
so at initialisation gamma = 1, beta = 0, M = 0 and the module is exactly (bitwise) the
identity on v: fused == v, independent of t. Gradients still reach every parameter at init
(G_k, B_k, the last Linear of M_k directly; the rest through them after the first step). The
conditioning is one-way (text -> vision), by design. No auxiliary loss.
"""

from __future__ import annotations

from torch import Tensor, nn

from models.fusions.base import FUSIONS, Fusion


def _zero_linear(d_in: int, d_out: int) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class _FiLMBlock(nn.Module):
    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.delta_gamma = _zero_linear(dim, dim)
        self.beta = _zero_linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), _zero_linear(2 * dim, dim)
        )

    def forward(self, h: Tensor, t: Tensor) -> Tensor:
        u = (1 + self.delta_gamma(t)) * h + self.beta(t)
        return u + self.mlp(self.norm(u))


@FUSIONS.register("film")
class FiLMFusion(Fusion):
    def __init__(
        self, dim: int, layers: int = 1, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.01
    ) -> None:
        super().__init__(dim, layers, heads, dropout, aux_weight)
        self.blocks = nn.ModuleList(_FiLMBlock(dim, dropout) for _ in range(layers))

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        h = v
        for block in self.blocks:
            h = block(h, t)
        return h, {}
