"""`modality_dropout`: the group's wound fusion (their best fusion on Wound; source: the research
group's setup as issue 26 states it, next to shared/reference/README.md): drop a whole modality
at random while training, then a two-layer MLP over the concatenation.

    training:  m_img ~ Bernoulli(p_img),  m_txt ~ Bernoulli(p_txt), independent
               v' = (1 - m_img) v,   t' = (1 - m_txt) t
    eval:      v' = v,   t' = t                                   (nothing is dropped)
    fused = W_2 ReLU(W_1 [v'; t'] + b_1) + b_2                    W_1: 2 dim -> dim, W_2: dim -> dim

Why: a student that sometimes sees only the photograph or only the description cannot lean on
one modality alone, so it still works when the other is weak (a blank description, "No
description available"). By default (`per_sample: false`, the group's) one draw of each mask
serves the whole batch: every sample of the batch loses its image embedding together (with
probability p_img), and independently its text embedding (p_txt), so both are lost in a
p_img * p_txt share of batches. `per_sample: true` draws the two masks per sample instead.
Dropped embeddings are zeroed, not rescaled by 1 / (1 - p) as in ordinary dropout, as in the
group's fusion. Options in YAML: `fusion: {name: modality_dropout, params: {p_img: 0.3,
p_txt: 0.3, per_sample: false}}`. `layers`, `heads`, `dropout` and `aux_weight` are unused; no
auxiliary loss. `keep_masks(batch, like)` returns the masks (1 keeps, 0 drops) it would apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.schema import unit_interval
from models.fusions.base import FUSIONS, Fusion


@dataclass(frozen=True, kw_only=True)
class ModalityDropoutParams:
    p_img: float = unit_interval(default=0.3)  # probability that the image embedding is zeroed
    p_txt: float = unit_interval(default=0.3)  # probability that the text embedding is zeroed
    per_sample: bool = False  # false: one draw per batch (the group's); true: one per sample


_DEFAULTS = ModalityDropoutParams()


@FUSIONS.register("modality_dropout")
class ModalityDropoutFusion(Fusion):
    Params = ModalityDropoutParams

    def __init__(
        self,
        dim: int,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
        aux_weight: float = 0.01,
        p_img: float = _DEFAULTS.p_img,
        p_txt: float = _DEFAULTS.p_txt,
        per_sample: bool = _DEFAULTS.per_sample,
    ) -> None:
        super().__init__(dim, layers, heads, dropout, aux_weight)
        for name, p in (("p_img", p_img), ("p_txt", p_txt)):
            if not 0 <= p <= 1:
                raise ValueError(f"modality_dropout: {name} must lie in [0, 1], got {p}")
        self.p_img, self.p_txt, self.per_sample = float(p_img), float(p_txt), bool(per_sample)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def keep_masks(self, batch: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """(keep_img, keep_txt), each [n, 1] of 0/1 in `like`'s dtype and device: n = batch with
        `per_sample`, else 1 (broadcast over the batch). Image first, then text, from torch's
        global generator, so `torch.manual_seed` makes a run repeatable."""
        n = batch if self.per_sample else 1
        u = torch.rand(n, 2, device=like.device)
        keep_img = (u[:, :1] >= self.p_img).to(like.dtype)
        keep_txt = (u[:, 1:] >= self.p_txt).to(like.dtype)
        return keep_img, keep_txt

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if self.training:
            keep_img, keep_txt = self.keep_masks(v.shape[0], v)
            v, t = v * keep_img, t * keep_txt
        return self.mlp(torch.cat([v, t], dim=-1)), {}
