"""`label`: the supervised term, summed over tasks::

    label(z_s, y) = sum over tasks  l(z_s[task], y[task])

l is the label loss `loss.label_loss` names, as the dataset's task kind defines it (tasks/):
multiclass `ce`, `focal` (Lin et al., 2017), `weighted_ce` (class weights n / (K * n_c)),
`ldam_drw` (Cao et al., NeurIPS 2019; its DRW schedule follows the trainer's epochs);
multilabel `bce`, `weighted_bce`, `focal`. Mean over the batch. Reads no teacher. A MIL model
trained on the DSMIL paper's objective (`mil.objective: dsmil`) gets that objective's two BCE
terms instead (losses/dsmil_objective.py), each at this term's weight.
YAML::

    - {term: label, weight: 0.3}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from torch import Tensor

from losses.terms.base import TERMS, Term, TermContext
from models.outputs import ModelOutput


@TERMS.register("label")
class Label(Term):
    uses_teacher: ClassVar[bool] = False
    fp32: ClassVar[bool] = False  # the label losses cast the logits themselves
    label_term: ClassVar[bool] = True

    def __init__(self, params: object, ctx: TermContext) -> None:
        super().__init__(params, ctx)
        c, loss = ctx.cfg, ctx.loss
        self.label = loss.kind.label_loss(
            c.label_loss, c.focal_gamma, loss.class_counts, loss.n_train, options=c
        )
        self.default_name = self.label.term_name  # logged as the presets log it: ce, weighted_bce...
        self.objective = None
        if loss.mil_objective == "dsmil":  # the DSMIL paper's two BCE terms replace the label loss
            from losses.dsmil_objective import DSMILObjective

            self.objective = DSMILObjective(loss.tasks)
            self.names = self.objective.term_names

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, labels: Mapping[str, Tensor], index: Tensor
    ) -> Tensor | dict[str, Tensor]:
        if self.objective is not None:
            return self.objective.terms(student, labels)
        return sum(self.label(t, student.logits[t], labels[t]) for t in self.ctx.loss.tasks)

    def text(self) -> str:
        if self.objective is not None:
            return "(0.5*BCE(max) + 0.5*BCE(bag))"
        return self.ctx.cfg.label_loss.upper()

    def start_epoch(self, epoch: int, epochs: int) -> None:
        hook = getattr(self.label, "start_epoch", None)
        if hook is not None:
            hook(epoch, epochs)
