"""`logit_kd`: logit distillation (Hinton, Vinyals & Dean, 2015, "Distilling the Knowledge
in a Neural Network"), summed over tasks::

    kd = sum over tasks  T^2 * KL(p_t^T || p_s^T),   p^T = softmax(z / T)   (batchmean)

for multiclass tasks; for multilabel tasks the kind's Bernoulli form, T^2 times the per-label
KL of sigmoid(z / T), mean over labels and batch (losses/multilabel_terms.py). The teacher is
detached. T is `params.temperature`, else `loss.temperature`. YAML::

    - {term: logit_kd, weight: 0.7, params: {temperature: 4.0}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from core.schema import optional_positive
from losses.terms.base import TERMS, Term
from models.outputs import ModelOutput


@dataclass(frozen=True)
class LogitKDParams:
    temperature: float | None = optional_positive()  # None: loss.temperature


@TERMS.register("logit_kd")
class LogitKD(Term):
    Params = LogitKDParams
    fp32 = False  # the kinds' KD terms cast the logits themselves

    @property
    def temperature(self) -> float:
        t = self.p.temperature
        return self.ctx.cfg.temperature if t is None else t

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, labels: Mapping[str, Tensor], index: Tensor
    ) -> Tensor:
        kind, temp = self.ctx.loss.kind, self.temperature
        return sum(kind.kd(student.logits[t], teacher.logits[t], temp) for t in self.ctx.loss.tasks)

    def text(self) -> str:
        kl = "KL" if getattr(self.ctx.loss.kind, "name", "multiclass") == "multiclass" else "KL_bin"
        return f"T^2*{kl}(T={self.temperature:g})"
