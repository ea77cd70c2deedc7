"""The loss extension point, and the one place where the logit-level KD convention is written.

Convention (Hinton et al., 2015, "Distilling the Knowledge in a Neural Network")::

    L_logit = sum over tasks [ alpha * T^2 * KL(p_t^T || p_s^T) + (1 - alpha) * label(z_s, y) ]
    p^T = softmax(z / T);  KL averaged over the batch ("batchmean")

alpha weights the distillation term (torchdistill's `alpha` weights the label term instead).
That is the convex convention (`DistillLoss.convex`, alpha in [0, 1]); an additive loss (the
research group's `group_*`) keeps the label term at weight 1 and lets alpha exceed 1. Every
loss returns named, already-weighted terms whose sum is the objective::

    L = L_logit + beta * (feature terms of the method)

A loss is one file in this folder with one decorator (see `DistillLoss`); its `formula()` is
the objective with the run's numbers, which every student run records (tag `loss.formula`).
YAML::

    loss: {name: vanilla, alpha: 0.7, temperature: 4.0, label_loss: ce}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ConfigError
from core.registry import Registry
from core.schema import LossConfig
from models.outputs import ModelOutput

LOSSES: Registry[type[DistillLoss]] = Registry("loss")


@dataclass(frozen=True)
class LossContext:
    """Facts every loss may need, known when the loss is built (not the whole config)."""

    tasks: tuple[str, ...]
    num_classes: Mapping[str, int]
    class_counts: Mapping[str, tuple[int, ...]]  # per task, train-split count of each class
    student_dim: int  # width of student features (image, text, fused)
    teacher_dim: int  # width of teacher features
    n_train: int  # size of the train split (contrastive memory banks)
    # The dataset's task kind (tasks.TaskKind): its label and KD terms. Passed in, not
    # imported, so losses depend on the core only.
    kind: Any
    # the trained model's `mil.objective` (None: not a MIL model); "dsmil" replaces the label
    # term by the paper's two BCE terms (losses/dsmil_objective.py)
    mil_objective: str | None = None


@dataclass(frozen=True)
class NoParams:
    """For losses without options of their own: `loss.params` must be empty."""


def kd_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(p_teacher || p_student) at temperature T, batchmean. Zero for equal logits."""
    t = temperature
    log_p_s = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.float().detach() / t, dim=-1)
    # kl_div(input=log q, target=log p, log_target=True) = sum p (log p - log q) = KL(p || q)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


class LabelLoss(nn.Module):
    """The supervised term per task: cross-entropy, focal (Lin et al., 2017) or class-weighted
    CE (weights n / (K * count_c), the 'balanced' heuristic). Mean over the batch."""

    term_name = "ce"  # logged as train/ce whichever of the three it is

    def __init__(self, kind: str, gamma: float, class_counts: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__()
        self.kind, self.gamma = kind, gamma
        for task, counts in class_counts.items():
            c = torch.tensor(counts, dtype=torch.float).clamp_min(1)
            self.register_buffer(f"w_{task}", c.sum() / (len(c) * c))

    def forward(self, task: str, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float()
        if self.kind == "weighted_ce":
            return F.cross_entropy(logits, target, weight=getattr(self, f"w_{task}"))
        if self.kind == "focal":
            log_p = F.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)
            return (-((1 - log_p.exp()) ** self.gamma) * log_p).mean()
        return F.cross_entropy(logits, target)


def merge_terms(loss: str, terms: dict[str, Tensor], new: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """`terms` with `new` added; a name already there is an error, never an overwrite: the
    objective is the sum of the terms, so an overwrite would silently drop one of them."""
    for name, value in new.items():
        if name in terms:
            raise ValueError(f"loss {loss}: two terms named {name!r}")
        terms[name] = value
    return terms


class DistillLoss(nn.Module):
    """Base of every loss. Subclasses set `Params` (a dataclass for `loss.params`), may set
    `uses_teacher = False`, and override `feature_terms` for representation-level terms
    (already multiplied by beta) and `feature_formula` for their text. Parts with parameters
    (projections) are submodules; the trainer optimises them with the student unless the loss
    keeps them fixed (`trained_parameters`: `loss.train_params`, else the class's `trainable`).
    `defaults` holds the alpha, temperature and beta the loss takes when `loss.*` leaves them
    unset, `convex` its alpha convention (label term weighted 1 - alpha, alpha in [0, 1]; else
    weight 1, alpha >= 0): both plain literals, which config validation reads from the source.
    Most losses are term lists (losses/composed.py `Preset`), whose names are checked when the
    loss is built; `merge_terms` refuses a clash in the others' `feature_terms`."""

    Params: ClassVar[type] = NoParams
    uses_teacher: ClassVar[bool] = True
    kinds: ClassVar[tuple[str, ...]] = ("multiclass", "multilabel")  # task kinds it works with
    defaults: ClassVar[Mapping[str, float]] = {"alpha": 0.5, "temperature": 4.0, "beta": 1.0}
    convex: ClassVar[bool] = True
    trainable: ClassVar[bool] = True  # default of loss.train_params

    def __init__(self, cfg: LossConfig, ctx: LossContext) -> None:
        super().__init__()
        from core.validate import parse  # the loss validates its own options

        try:  # a loaded config is resolved already; one built by hand (tests) is resolved here
            cfg = cfg.resolved(self.defaults, self.convex)
        except ValueError as e:
            raise ConfigError(f"loss.{e.args[0]}: {e.args[1]}") from None
        self.cfg, self.ctx = cfg, ctx
        self.params = parse(self.Params, dict(cfg.params), where="loss.params")
        self.label = ctx.kind.label_loss(
            cfg.label_loss, cfg.focal_gamma, ctx.class_counts, ctx.n_train, options=cfg
        )
        self.objective = None
        if ctx.mil_objective == "dsmil":
            from losses.dsmil_objective import DSMILObjective

            self.objective = DSMILObjective(ctx.tasks)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the trainer before each epoch (1-based): schedules such as DRW."""
        hook = getattr(self.label, "start_epoch", None)
        if hook is not None:
            hook(epoch, epochs)

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, labels: Mapping[str, Tensor], index: Tensor
    ) -> dict[str, Tensor]:
        terms = self.logit_terms(student, teacher, labels)
        if teacher is not None:
            merge_terms(self.cfg.name, terms, self.feature_terms(student, teacher, index))
        return terms

    def logit_terms(
        self, student: ModelOutput, teacher: ModelOutput | None, labels: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """alpha * KD + (1 - alpha) * label, summed over tasks (label only without KD); the
        kind decides both terms (multiclass: T^2 * KL of softmaxes and CE). Under the DSMIL
        paper's objective the label part is its two terms, each weighted by (1 - alpha)."""
        alpha = self.cfg.alpha if (teacher is not None and self.uses_teacher) else 0.0
        weight = (1 - alpha) if self.convex else 1.0
        if self.objective is not None:
            terms = {k: weight * v for k, v in self.objective.terms(student, labels).items()}
        else:
            label = sum(self.label(t, student.logits[t], labels[t]) for t in self.ctx.tasks)
            terms = {self.label.term_name: weight * label}
        if alpha > 0:
            kind, temp = self.ctx.kind, self.cfg.temperature
            terms["kd"] = alpha * sum(
                kind.kd(student.logits[t], teacher.logits[t], temp) for t in self.ctx.tasks
            )
        return terms

    def feature_terms(self, student: ModelOutput, teacher: ModelOutput, index: Tensor) -> dict[str, Tensor]:
        return {}

    @property
    def trains_params(self) -> bool:
        """Whether the optimiser updates this loss's parameters: `loss.train_params`, else the
        class's `trainable`."""
        return self.trainable if self.cfg.train_params is None else self.cfg.train_params

    def trained_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters the optimiser updates: the loss's trainable ones, or none when the
        loss keeps them fixed (those are then set requires_grad False: no gradient either)."""
        if not self.trains_params:
            self.requires_grad_(False)
        return (p for p in self.parameters() if p.requires_grad)

    def formula(self) -> str:
        """The objective with this run's numbers, e.g. ``L = 0.3*CE + 0.7*T^2*KL(T=4)``."""
        label = self.cfg.label_loss.upper()
        if self.objective is not None:  # the DSMIL paper's two terms replace the label term
            label = "(0.5*BCE(max) + 0.5*BCE(bag))"
        if not self.uses_teacher:
            return f"L = 1*{label}"
        alpha = self.cfg.alpha
        weight = (1 - alpha) if self.convex else 1.0
        kl = "KL" if getattr(self.ctx.kind, "name", "multiclass") == "multiclass" else "KL_bin"
        kd = f"{alpha:g}*T^2*{kl}(T={self.cfg.temperature:g})"
        return f"L = {weight:g}*{label} + {kd}" + self.feature_formula()

    def feature_formula(self) -> str:
        """The feature terms of `formula` (" + beta*[...]"), empty for a logit-only loss."""
        return ""

    def fixed_or_trained(self, what: str) -> str:
        """' (W fixed)' / ' (W trained)': whether the loss's maps named `what` are trained."""
        return f" ({what} {'trained' if self.trains_params else 'fixed'})"
