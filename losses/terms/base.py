"""The building blocks of an objective: a loss term is one file and one decorator.

A term computes one unweighted scalar from the student's and teacher's outputs (`ModelOutput`:
per-task logits, per-modality features `image` / `text`, the fused features `fused`); a loss
is a weighted sum of named terms (losses/composed.py, `loss.name: terms`)::

    L = sum over terms  weight_i * term_i(student, teacher, labels)

Each term's docstring gives its formula, convention and source. A term that reads a modality
one side lacks (an image-only student) returns None and is left out of the sum, as the
feature terms of the preset losses are. Maps between feature spaces (projections) are owned by
the loss (`Projections`), so two terms may share one: the research group's MSE and InfoNCE
terms project the teacher with the same fixed random matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from core.registry import Registry
from core.schema import LossConfig
from losses.base import LossContext, NoParams
from models.outputs import ModelOutput

TERMS: Registry[type[Term]] = Registry("loss term")
SIDES = {"image": "img", "text": "txt", "fused": "fused"}  # a feature's short name in formulas


class Projections(nn.Module):
    """The loss's linear maps between student and teacher feature spaces, one per (side,
    feature): `student_image` maps the student's image features into the teacher's width
    (student_dim -> teacher_dim), `teacher_image` the teacher's into the student's. Created in
    the order the terms ask for them (seeded runs initialise them alike); a map asked for
    twice is shared, and must then be asked for with the same `trained`."""

    def __init__(self, ctx: LossContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.maps = nn.ModuleDict()
        self.trained: dict[str, bool] = {}

    def get(self, side: str, feature: str, trained: bool) -> nn.Module:
        key = f"{side}_{feature}"
        if key not in self.maps:
            s, t = self.ctx.student_dim, self.ctx.teacher_dim
            self.maps[key] = nn.Linear(s, t) if side == "student" else nn.Linear(t, s)
            self.trained[key] = trained
            self.maps[key].requires_grad_(trained)
        elif self.trained[key] != trained:
            raise ValueError(f"the {side} projection of {feature} is asked for both trained and fixed")
        return self.maps[key]


@dataclass(frozen=True)
class TermContext:
    """What a term may read when it is built: the loss's facts and section, and its maps."""

    loss: LossContext
    cfg: LossConfig  # resolved: temperature, label_loss, focal_gamma, ldam
    maps: Projections


class Term(nn.Module):
    """Base of every term. Subclasses set `Params` (a dataclass for the term's `params`),
    `uses_teacher`, `kinds` (task kinds it works with) and `fp32` (computed with autocast off,
    as every feature term), and implement `forward(student, teacher, labels, index)` and
    `text()` (its formula, without the weight)."""

    Params: ClassVar[type] = NoParams
    uses_teacher: ClassVar[bool] = True
    kinds: ClassVar[tuple[str, ...]] = ("multiclass", "multilabel")
    fp32: ClassVar[bool] = True
    label_term: ClassVar[bool] = False  # the supervised term (weight 1 when a convex loss has no teacher)

    def __init__(self, params: object, ctx: TermContext) -> None:
        super().__init__()
        self.p, self.ctx = params, ctx

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, labels: Mapping[str, Tensor], index: Tensor
    ) -> Tensor | None:
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the trainer before each epoch (schedules such as DRW)."""


class FeatureTerm(Term):
    """A term comparing one feature (`params.feature`) of student and teacher: `compare(s, t)`
    on the pair (`pair`); None, and no term, when one side lacks the feature."""

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, labels: Mapping[str, Tensor], index: Tensor
    ) -> Tensor | None:
        st = pair(student, teacher, self.p.feature)
        return None if st is None else self.compare(*st)

    def compare(self, s: Tensor, t: Tensor) -> Tensor:
        raise NotImplementedError


def pair(student: ModelOutput, teacher: ModelOutput, feature: str) -> tuple[Tensor, Tensor] | None:
    """(student, detached teacher) features named `feature`, flattened, fp32; None when one
    side lacks them."""
    s, t = getattr(student, feature), getattr(teacher, feature)
    if s is None or t is None:
        return None
    return s.float().flatten(1), t.detach().float().flatten(1)
