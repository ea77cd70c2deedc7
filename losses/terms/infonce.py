"""`infonce`: in-batch contrastive alignment, averaged over features::

    infonce = mean over features f  CE(S_f, [0, 1, ..., B-1])
    S_f[i, j] = < s_i / |s_i|, u_j / |u_j| > / tau,   u = W t_f (project teacher) or s := P s_f

van den Oord et al., 2018 ("Representation Learning with Contrastive Predictive Coding"), in the
in-batch, CLIP-style form (Radford et al., 2021), one direction: row i (a student sample) must
pick column i (the teacher feature of the same sample) among the batch. tau =
`params.temperature` (0.1, the research group's). The map is the loss's (`Projections`), so
it is the same matrix an `align` term on that side and feature uses. Features missing on
either side are left out of the mean (None when all are). The teacher is detached; fp32. YAML::

    - {term: infonce, weight: 10.0,
       params: {features: [image, text], project: teacher, trained: false, temperature: 0.1}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from core.schema import positive
from losses.terms.base import SIDES, TERMS, Term, TermContext, pair
from models.outputs import ModelOutput


def info_nce(s: Tensor, u: Tensor, temperature: float) -> Tensor:
    """Cross-entropy of the cosine similarities of s [B, D] and u [B, D] over tau, row i's
    positive being column i."""
    sim = F.normalize(s, dim=-1) @ F.normalize(u, dim=-1).t() / temperature
    return F.cross_entropy(sim, torch.arange(len(s), device=s.device))


@dataclass(frozen=True)
class InfoNCEParams:
    features: tuple[Literal["image", "text", "fused"], ...] = ("image", "text")
    project: Literal["student", "teacher"] = "teacher"
    trained: bool = True
    temperature: float = positive(default=0.1)

    def validate(self) -> None:
        if not self.features:
            raise ValueError("features", "expected at least one of image, text, fused")


@TERMS.register("infonce")
class InfoNCE(Term):
    Params = InfoNCEParams

    def __init__(self, params: InfoNCEParams, ctx: TermContext) -> None:
        super().__init__(params, ctx)
        self.maps = [ctx.maps.get(params.project, f, params.trained) for f in params.features]

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, labels: Mapping[str, Tensor], index: Tensor
    ) -> Tensor | None:
        values = []
        for feature, m in zip(self.p.features, self.maps, strict=True):
            st = pair(student, teacher, feature)
            if st is not None:
                s, t = st
                s, t = (m(s), t) if self.p.project == "student" else (s, m(t))
                values.append(info_nce(s, t, self.p.temperature))
        return sum(values) / len(values) if values else None

    def text(self) -> str:
        names = ",".join(SIDES[f] for f in self.p.features)
        s, t = ("P_m s_m", "t_m") if self.p.project == "student" else ("s_m", "W_m t_m")
        return f"mean_m InfoNCE({s}, {t}; tau={self.p.temperature:g}, m in {{{names}}})"
