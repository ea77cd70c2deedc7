"""`focal`: the sigmoid focal loss of Lin et al. (2017, "Focal Loss for Dense Object
Detection") on multilabel logits, summed over tasks::

    focal = sum over tasks  mean_{b, c} -a_t (1 - p_t)^gamma log p_t

equal to `torchvision.ops.sigmoid_focal_loss(..., reduction="mean")` (losses/multilabel_terms.py);
a = `params.alpha` (< 0: no alpha weighting), gamma = `params.gamma`, else `loss.focal_gamma`.
X-Lite's extra term (seed 004). Reads no teacher. YAML::

    - {term: focal, weight: 0.5, params: {alpha: 0.25}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from core.schema import optional_positive
from losses.multilabel_terms import sigmoid_focal
from losses.terms.base import TERMS, Term
from models.outputs import ModelOutput


@dataclass(frozen=True)
class FocalParams:
    alpha: float = 0.25
    gamma: float | None = optional_positive()  # None: loss.focal_gamma


@TERMS.register("focal")
class Focal(Term):
    Params = FocalParams
    uses_teacher = False
    kinds = ("multilabel",)
    fp32 = False

    @property
    def gamma(self) -> float:
        return self.ctx.cfg.focal_gamma if self.p.gamma is None else self.p.gamma

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, labels: Mapping[str, Tensor], index: Tensor
    ) -> Tensor:
        a, g = self.p.alpha, self.gamma
        return sum(sigmoid_focal(student.logits[t], labels[t], a, g) for t in self.ctx.loss.tasks)

    def text(self) -> str:
        return f"Focal(alpha={self.p.alpha:g}, gamma={self.gamma:g})"
