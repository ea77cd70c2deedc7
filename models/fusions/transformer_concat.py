"""`transformer_concat`: a CLS token and the two modality tokens through a Transformer encoder.

    S     = [c; v; t] + [e_cls; e_img; e_txt]         (c a learned CLS vector, e_* type embeddings)
    H     = TransformerEncoder(S)                     (`layers` pre-norm layers, `heads` heads,
                                                       FFN width 4 dim, GELU, batch_first)
    fused = LN(H[:, 0])                               (the CLS token, final LayerNorm)

Every parameter is used: the CLS vector and all three type embeddings enter S (the seed's
unused `modality_token` is gone). CLS and type embeddings start at N(0, 0.02^2). No auxiliary
loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.fusions.base import FUSIONS, Fusion


@FUSIONS.register("transformer_concat")
class TransformerConcatFusion(Fusion):
    def __init__(
        self, dim: int, layers: int = 1, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.01
    ) -> None:
        super().__init__(dim, layers, heads, dropout, aux_weight)
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        self.type_embed = nn.Parameter(torch.randn(3, dim) * 0.02)  # cls, image, text
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            dim_feedforward=4 * dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # nested tensors need post-norm layers; disabling them also silences the warning.
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False
        )

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        seq = torch.stack([self.cls.expand_as(v), v, t], dim=1) + self.type_embed  # [B, 3, dim]
        return self.encoder(seq)[:, 0], {}
