"""`crd`: Contrastive Representation Distillation on the fused features, as a term (the `crd`
preset, losses/crd.py, is logit KD plus this term at weight beta * params.weight; the formula,
its source and the memory are documented there). Two named parts: ``crd_student`` (L_s, the
student's anchors against the teacher memory) and ``crd_teacher`` (L_t), unweighted here.

YAML (in a term list)::

    loss: {name: terms, params: {terms: [{term: label}, {term: crd, weight: 0.1,
           params: {feat_dim: 128, nce_k: 4096, nce_t: 0.07, nce_m: 0.5}}]}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.schema import positive, unit_interval
from losses.terms.base import TERMS, Term, TermContext
from models.outputs import ModelOutput

_EPS = 1e-7  # as in RepDistiller's ContrastLoss


@dataclass(frozen=True)
class CRDTermParams:
    feat_dim: int = positive(default=128)  # embedding width
    nce_k: int = positive(default=4096)  # negatives per anchor (clipped to n_train - 1)
    nce_t: float = positive(default=0.07)  # temperature tau
    nce_m: float = unit_interval(default=0.5)  # memory momentum


class Embed(nn.Module):
    """Linear map to feat_dim, then L2 normalisation."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.linear(x.flatten(1)), dim=-1)


def nce_loss(scores: Tensor, n_data: int) -> Tensor:
    """RepDistiller's ContrastLoss: scores [B, K + 1] (positive in column 0) of h = exp(.)/Z."""
    k = scores.size(1) - 1
    noise = k / float(n_data)  # K * P_n with a uniform noise distribution P_n = 1/N
    log_d1 = torch.log(scores[:, 0] / (scores[:, 0] + noise + _EPS))
    log_d0 = torch.log(noise / (scores[:, 1:] + noise + _EPS))
    return -(log_d1.sum() + log_d0.sum()) / scores.size(0)


@TERMS.register("crd")
class CRDTerm(Term):
    Params = CRDTermParams
    names = ("crd_student", "crd_teacher")

    def __init__(self, params: CRDTermParams, ctx: TermContext) -> None:
        super().__init__(params, ctx)
        n = ctx.loss.n_train
        if n < 2:
            raise ValueError(f"crd needs at least 2 training samples, got n_train={n}")
        self.n_data = n
        self.k = min(params.nce_k, n - 1)
        self.embed_s = Embed(ctx.loss.student_dim, params.feat_dim)
        self.embed_t = Embed(ctx.loss.teacher_dim, params.feat_dim)
        self.register_buffer("memory_s", F.normalize(torch.randn(n, params.feat_dim), dim=-1))
        self.register_buffer("memory_t", F.normalize(torch.randn(n, params.feat_dim), dim=-1))
        self.register_buffer("z_s", torch.tensor(-1.0))  # < 0: not set yet
        self.register_buffer("z_t", torch.tensor(-1.0))
        self.last_contrast_index: Tensor | None = None  # for inspection (tests, debugging)

    def contrast_indices(self, index: Tensor) -> Tensor:
        """[B, K + 1]: column 0 = index (the positive), then K negatives drawn uniformly with
        replacement from the other n_train - 1 positions."""
        index = index.long().view(-1)
        draw = torch.randint(0, self.n_data - 1, (len(index), self.k), device=index.device)
        negatives = draw + (draw >= index[:, None]).long()  # skip the positive
        return torch.cat([index[:, None], negatives], dim=1)

    def _scores(self, anchor: Tensor, memory: Tensor, idx: Tensor, z: Tensor) -> Tensor:
        """h = exp(<anchor, memory[idx]> / tau) / Z, [B, K + 1]; Z set on first training use."""
        rows = memory[idx].detach()  # [B, K + 1, feat_dim]
        out = torch.exp(torch.einsum("bkd,bd->bk", rows, anchor) / self.p.nce_t)
        if z.item() < 0:
            estimate = out.detach().mean() * self.n_data
            if not self.training:
                return out / estimate  # eval before any training step: store nothing
            z.copy_(estimate)
        return out / z

    @torch.no_grad()
    def _update(self, memory: Tensor, index: Tensor, emb: Tensor) -> None:
        m = self.p.nce_m
        rows = memory[index] * m + emb.detach() * (1.0 - m)
        memory.index_copy_(0, index, F.normalize(rows, dim=-1))

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, labels: Mapping[str, Tensor], index: Tensor
    ) -> dict[str, Tensor]:
        index = index.to(self.memory_s.device).long().view(-1)
        g_s = self.embed_s(student.fused.float())
        g_t = self.embed_t(teacher.fused.detach().float())
        idx = self.contrast_indices(index)
        self.last_contrast_index = idx
        out_s = self._scores(g_s, self.memory_t, idx, self.z_s)  # student anchor vs teacher memory
        out_t = self._scores(g_t, self.memory_s, idx, self.z_t)  # teacher anchor vs student memory
        loss_s, loss_t = nce_loss(out_s, self.n_data), nce_loss(out_t, self.n_data)
        if self.training:  # after scoring: the positive is the memory of the previous visit
            self._update(self.memory_s, index, g_s)
            self._update(self.memory_t, index, g_t)
        return {"crd_student": loss_s, "crd_teacher": loss_t}

    def text(self) -> str:
        return f"[NCE_s + NCE_t](K={self.k}, tau={self.p.nce_t:g}, m={self.p.nce_m:g})"
