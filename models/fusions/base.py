"""The fusion extension point: a module that turns image and text features into one vector.

Add a fusion with one file in this folder and one decorator::

    @FUSIONS.register("my_fusion")
    class MyFusion(Fusion):
        def forward(self, v, t): ...

Every fusion is built as ``cls(dim=, layers=, heads=, dropout=, aux_weight=)`` from the
model's FusionConfig, takes v, t of shape [B, dim] (the per-modality projections) and returns
``(fused [B, dim], aux_losses)``: aux_losses maps a name to an already-weighted scalar that
the trainer adds to the objective and logs (empty for most fusions). In eval mode a fusion
is deterministic.
"""

from __future__ import annotations

from torch import Tensor, nn

from core.registry import Registry

FUSIONS: Registry[type[Fusion]] = Registry("fusion")


class Fusion(nn.Module):
    def __init__(
        self, dim: int, layers: int = 1, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.01
    ) -> None:
        super().__init__()
        self.dim, self.layers, self.heads, self.dropout, self.aux_weight = (
            dim,
            layers,
            heads,
            dropout,
            aux_weight,
        )

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError
