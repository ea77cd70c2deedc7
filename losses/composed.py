"""`terms`: a loss written in YAML as a weighted sum of named terms (losses/terms/)::

    L = sum over i  weight_i * term_i(student, teacher, labels)

Each entry names a term (`term`, one of the TERMS registry: label, logit_kd, align, infonce,
rkd_distance, rkd_angle, mmd, focal), its `weight` (any real number: no convex convention,
alpha and beta are not read), the name it is logged under (`name`, default the term's; two
entries with one name are refused when the config is loaded, as are unknown terms and
options) and its options (`params`, validated by the term). Terms that read the teacher are
left out when there is none (a teacher-free student, `teacher.*` absent); a term whose feature
one side lacks is left out of that batch. Every run records the expanded objective (tag
`loss.formula`). The presets are term lists too: tests/test_loss_terms.py checks that these
lists equal `none`, `vanilla`, `combined`, `rkd`, `mmd`, `group_vanilla` and `group_combined`
on identical tensors and maps, tests/test_xlite_loss.py `xlite_kd`: each preset is a `Preset`
below, its file writing only its term list (`crd`, with its memory bank, is not yet). YAML (kdsweep's `combined` at alpha 0.7, beta 1)::

    loss:
      name: terms
      temperature: 4.0
      params:
        terms:
          - {term: label, weight: 0.3}
          - {term: logit_kd, weight: 0.7}
          - {term: align, name: align_image, weight: 0.5, params: {feature: image}}
          - {term: align, name: align_text, weight: 0.5, params: {feature: text}}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from core.errors import ConfigError
from core.schema import LossConfig
from core.validate import parse
from losses.base import LOSSES, DistillLoss, LossContext, NoParams
from losses.terms import TERMS, Projections, TermContext
from models.outputs import ModelOutput


@dataclass(frozen=True, kw_only=True)
class TermSpec:
    term: str
    weight: float = 1.0
    name: str = ""  # logged as train/<name>; default the term's own name
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.term


@dataclass(frozen=True)
class TermsParams:
    # no list: the label term alone (the no-KD objective); the list is what makes it distil
    terms: tuple[TermSpec, ...] = (TermSpec(term="label"),)

    def validate(self) -> None:
        if not self.terms:
            raise ValueError("terms", "expected at least one term ({term: label, weight: 1.0})")
        seen: set[str] = set()
        for i, spec in enumerate(self.terms):
            if spec.term not in TERMS:
                raise ValueError(
                    f"terms[{i}].term", f"unknown loss term {spec.term!r} (valid: {', '.join(TERMS)})"
                )
            try:
                parse(TERMS.get(spec.term).Params, dict(spec.params), where="")
            except ConfigError as e:  # the term's own one-line error ("key: message"), placed here
                key, _, msg = str(e).removeprefix(": ").partition(": ")
                raise ValueError(f"terms[{i}].params.{key}", msg) from None
            if spec.label in seen:
                raise ValueError(f"terms[{i}].name", f"two terms named {spec.label!r} (give one a `name`)")
            seen.add(spec.label)


@LOSSES.register("terms")
class TermsLoss(DistillLoss):
    """The loss of a term list: `term_list()` (here `loss.params.terms`; a preset's from its
    definition) is built once, in order (maps are created in that order)."""

    Params = TermsParams
    convex = False  # weights are written out: alpha is not read

    def __init__(self, cfg: LossConfig, ctx: LossContext) -> None:
        super().__init__(cfg, ctx)
        self.maps = Projections(ctx)
        tctx = TermContext(ctx, self.cfg, self.maps)
        self.parts = nn.ModuleList()
        self.entries: list[TermSpec] = self.term_list()
        kind = getattr(ctx.kind, "name", "multiclass")
        for spec in self.entries:
            cls = TERMS.get(spec.term)
            if kind not in cls.kinds:
                raise ValueError(f"loss term {spec.term} is for {', '.join(cls.kinds)} tasks, not {kind}")
            self.parts.append(cls(parse(cls.Params, dict(spec.params), where="loss.params"), tctx))
        # logged names: the entry's `name`, else the term's own (the label term's: its label
        # loss's, `ce` or e.g. `weighted_bce`, as in the presets; DSMIL's two label terms)
        names = [n for s, t in zip(self.entries, self.parts, strict=True) for n in _names(s, t)]
        dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if dup is not None:
            raise ValueError(f"loss {cfg.name}: two terms named {dup!r} (give one a `name`)")

    def term_list(self) -> list[TermSpec]:
        return list(self.params.terms)

    def projection(self, side: str, feature: str) -> nn.Module:
        """The map a term of this loss uses: `projection("student", "image")` is P_img."""
        return self.maps.maps[f"{side}_{feature}"]

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, labels: Mapping[str, Tensor], index: Tensor
    ) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for spec, term in zip(self.entries, self.parts, strict=True):
            weight = spec.weight
            if term.uses_teacher and (teacher is None or weight == 0):
                continue  # a teacher term at weight 0 is not computed (alpha 0: no KD term)
            if teacher is None and self.convex and term.label_term:  # no teacher: alpha is 0
                weight = 1.0
            # feature terms in fp32 (autocast off); the logit terms cast their inputs themselves
            fp32 = torch.autocast(device_type=student.fused.device.type, enabled=False)
            with fp32 if term.fp32 else contextlib.nullcontext():
                value = term(student, teacher, labels, index)
            if isinstance(value, Mapping):  # a term made of named parts (DSMIL's label term)
                out.update({k: weight * v for k, v in value.items()})
            elif value is not None:
                out[_names(spec, term)[0]] = weight * value
        return out

    def start_epoch(self, epoch: int, epochs: int) -> None:
        for term in self.parts:
            term.start_epoch(epoch, epochs)

    def trained_parameters(self) -> Iterator[nn.Parameter]:
        """The maps each term asked to train (`trained`), or all / none when `loss.train_params`
        says so; fixed ones get no gradient."""
        if self.cfg.train_params is not None:
            self.maps.requires_grad_(self.cfg.train_params)
        return (p for p in self.parameters() if p.requires_grad)

    def formula(self) -> str:
        text = " + ".join(f"{s.weight:g}*{t.text()}" for s, t in zip(self.entries, self.parts, strict=True))
        fixed = sorted(k for k, trained in self.maps.trained.items() if not trained)
        if self.cfg.train_params is not None:
            fixed = [] if self.cfg.train_params else sorted(self.maps.trained)
        return f"L = {text}" + (f" (fixed: {', '.join(fixed)})" if fixed else "")


def _names(spec: TermSpec, term: nn.Module) -> list[str]:
    """The names an entry is logged under."""
    if spec.name:
        return [spec.name]
    return list(getattr(term, "names", [getattr(term, "default_name", spec.term)]))


class Preset(TermsLoss):
    """A named loss (`vanilla`, `combined`...): its term list follows from its definition and the
    run's alpha, temperature, beta and `params`, and its formula keeps the preset's layout
    (`losses.base.DistillLoss.formula`: label and KD, then `feature_formula`)."""

    Params = NoParams
    convex = True
    formula = DistillLoss.formula

    def kd_terms(self) -> list[TermSpec]:
        """The label term and logit KD at alpha: (1 - alpha) * label under the convex
        convention, 1 * label under the additive one."""
        a = self.cfg.alpha
        label = TermSpec(term="label", weight=(1 - a) if self.convex else 1.0)
        return [label, TermSpec(term="logit_kd", name="kd", weight=a)]

    def term_list(self) -> list[TermSpec]:
        return self.kd_terms()
