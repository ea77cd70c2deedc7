"""`align`: feature alignment of the student to the teacher on one feature (`image`, `text`
or the fused `fused`), through a linear map on one side::

    cosine, project student:  mean_b (1 - cos(P s_b, t_b))         (kdsweep's `combined`)
    cosine, project teacher:  mean_b (1 - cos(s_b, W t_b))
    mse,    project student:  MSE(P s, t)
    mse,    project teacher:  MSE(s, W t)                            (the group's `vanilla`)

Sources: hint learning with a regressor into the teacher's space (FitNets, Romero et al., ICLR
2015: MSE, student projected); the cosine form is bounded in [0, 2] and scale-free (kdsweep's
`combined`); the research group's MSE to a fixed random projection of the teacher
(../shared/reference/README.md). MSE is PyTorch's mean over batch and features. P / W are
`nn.Linear` maps owned by the loss (`Projections`; shared with any other term that projects
the same side and feature) and trained with the student when `trained` (a fixed random map
otherwise; `loss.train_params` overrides). The teacher is detached; fp32. None when either
side lacks the feature. YAML::

    - {term: align, name: align_image, weight: 0.5,
       params: {feature: image, metric: cosine, project: student, trained: true}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from losses.terms.base import SIDES, TERMS, FeatureTerm, TermContext


@dataclass(frozen=True)
class AlignParams:
    feature: Literal["image", "text", "fused"] = "fused"
    metric: Literal["cosine", "mse"] = "cosine"
    project: Literal["student", "teacher"] = "student"
    trained: bool = True


@TERMS.register("align")
class Align(FeatureTerm):
    Params = AlignParams

    def __init__(self, params: AlignParams, ctx: TermContext) -> None:
        super().__init__(params, ctx)
        self.map = ctx.maps.get(params.project, params.feature, params.trained)

    def compare(self, s: Tensor, t: Tensor) -> Tensor:
        s, t = (self.map(s), t) if self.p.project == "student" else (s, self.map(t))
        if self.p.metric == "mse":
            return F.mse_loss(s, t)
        return (1.0 - (F.normalize(s, dim=-1) * F.normalize(t, dim=-1)).sum(dim=-1)).mean()

    def text(self) -> str:
        f = SIDES[self.p.feature]
        s, t = (f"P_{f} s_{f}", f"t_{f}") if self.p.project == "student" else (f"s_{f}", f"W_{f} t_{f}")
        return f"MSE({s}, {t})" if self.p.metric == "mse" else f"(1 - cos({s}, {t}))"
