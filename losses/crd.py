"""`crd`: logit KD plus Contrastive Representation Distillation on the fused features.

Tian, Krishnan & Isola, ICLR 2020, "Contrastive Representation Distillation" (the NCE form of
the paper's objective, as in its reference code RepDistiller, crd/criterion.py + memory.py)::

    L = L_logit + beta * w * (L_s + L_t)
    g_s = normalize(W_s f_s + b_s),  g_t = normalize(W_t sg(f_t) + b_t)     (feat_dim, trainable)
    h(u, v) = exp(<u, v> / tau) / Z          Z = N * mean exp(<u, v> / tau), fixed at first use
    L_s = -1/B sum_i [ log h_i+ / (h_i+ + K/N)  +  sum_{k=1..K} log (K/N) / (h_ik + K/N) ]

with h_i+ = h(g_s_i, M_t[i]) (the positive: the teacher memory row of sample i) and
h_ik = h(g_s_i, M_t[j_k]) for K negatives j_k drawn uniformly from the train split without the
positive; L_t is the same with the roles swapped (g_t_i against the student memory M_s).
N = n_train, K = min(nce_k, N - 1), tau = nce_t. sg = stop-gradient: the teacher network never
receives gradient.

Convention and how it meets the project rule "project only the student": the student's fused
features go through a trainable embedding; the teacher's fused features are DETACHED, then
go through CRD's teacher embedding W_t, which we keep because it is part of the paper's method
(the teacher's width differs from feat_dim, and L_t trains W_t to make the teacher anchors
discriminative for the student memory). The rule exists because a symmetric alignment
(e.g. 1 - cos) with projections on both sides is minimised by mapping everything to one
constant vector. This objective is not: each anchor must score its own memory row (positive)
above K other samples' rows (negatives), and a constant embedding scores all of them equally,
which at best (whatever Z) is the chance value log(K + 1) + K log((K + 1) / K) of the NCE
loss, not its minimum (tested: a collapsed embedding never goes below chance, an aligned one
does). The student gets its gradient only from
L_s, whose targets (the teacher memory M_t) are normalised teacher embeddings, never a function
of the student.

Memory: two buffers `memory_s`, `memory_t` [n_train, feat_dim] of unit rows (random at start),
indexed by `index` (the samples' positions in the train split, from the DataLoader): column 0
of the contrast indices is the positive, columns 1..K the negatives. The rows of the batch are
updated AFTER scoring, only in training mode (`self.training`), with momentum nce_m and
renormalised: M[i] <- normalize(nce_m * M[i] + (1 - nce_m) * g_i). Z_s, Z_t are buffers too,
set by the first training-mode call and fixed afterwards (an eval-mode call before that uses
the batch estimate and stores nothing). Everything is computed in fp32 (autocast disabled).
Terms: ``crd_student`` (= beta * w * L_s) and ``crd_teacher`` (= beta * w * L_t).

YAML::

    loss: {name: crd, alpha: 0.5, temperature: 4.0, beta: 1.0,
           params: {feat_dim: 128, nce_k: 4096, nce_t: 0.07, nce_m: 0.5, weight: 0.1}}

Magnitude at initialisation: each NCE term starts a little above its chance value log(K + 1) + 1
(all scores ~ 1/N, plus their spread): measured 5.6 per term for N = 50 (K = 49) and 9.4 for N =
2000 (K = 1999), two terms. The default weight w = 0.1 keeps their sum comparable to the label
term (RepDistiller uses beta 0.8 and no KD term; params.weight 1, beta 0.8 reproduces its
weighting). Measured by `tests/test_losses.py::measured_ratio` (printed by `PYTHONPATH=. python
tests/test_losses.py`): default config (alpha 0.5, beta 1, default params), random N(0, 1)
logits and features, student_dim 64, teacher_dim 96, B 32, tasks of 3 and 4 classes, n_train 50,
mean over 20 seeds of (sum of the feature terms) / (the "ce" term, 1.58 there);
`test_feature_to_ce_ratio_at_init` keeps the number below within 10%. Measured: crd_student
0.56, crd_teacher 0.56, feature / ce = 0.71 (1.19 with n_train 2000).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.schema import LossConfig, non_negative, positive, unit_interval
from losses.base import LOSSES, DistillLoss, LossContext
from models.outputs import ModelOutput

_EPS = 1e-7  # as in RepDistiller's ContrastLoss


@dataclass(frozen=True)
class CRDParams:
    feat_dim: int = positive(default=128)  # embedding width
    nce_k: int = positive(default=4096)  # negatives per anchor (clipped to n_train - 1)
    nce_t: float = positive(default=0.07)  # temperature tau
    nce_m: float = unit_interval(default=0.5)  # memory momentum
    weight: float = non_negative(default=0.1)  # w, inside beta


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


@LOSSES.register("crd")
class CRDLoss(DistillLoss):
    Params = CRDParams

    def __init__(self, cfg: LossConfig, ctx: LossContext) -> None:
        super().__init__(cfg, ctx)
        if ctx.n_train < 2:
            raise ValueError(f"crd needs at least 2 training samples, got n_train={ctx.n_train}")
        p = self.params
        self.n_data = ctx.n_train
        self.k = min(p.nce_k, ctx.n_train - 1)
        self.embed_s = Embed(ctx.student_dim, p.feat_dim)
        self.embed_t = Embed(ctx.teacher_dim, p.feat_dim)
        self.register_buffer("memory_s", F.normalize(torch.randn(ctx.n_train, p.feat_dim), dim=-1))
        self.register_buffer("memory_t", F.normalize(torch.randn(ctx.n_train, p.feat_dim), dim=-1))
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
        out = torch.exp(torch.einsum("bkd,bd->bk", rows, anchor) / self.params.nce_t)
        if z.item() < 0:
            estimate = out.detach().mean() * self.n_data
            if not self.training:
                return out / estimate  # eval before any training step: store nothing
            z.copy_(estimate)
        return out / z

    @torch.no_grad()
    def _update(self, memory: Tensor, index: Tensor, emb: Tensor) -> None:
        m = self.params.nce_m
        rows = memory[index] * m + emb.detach() * (1.0 - m)
        memory.index_copy_(0, index, F.normalize(rows, dim=-1))

    def feature_terms(self, student: ModelOutput, teacher: ModelOutput, index: Tensor) -> dict[str, Tensor]:
        index = index.to(self.memory_s.device).long().view(-1)
        with torch.autocast(device_type=self.memory_s.device.type, enabled=False):
            g_s = self.embed_s(student.fused.float())
            g_t = self.embed_t(teacher.fused.detach().float())
            idx = self.contrast_indices(index)
            self.last_contrast_index = idx
            out_s = self._scores(g_s, self.memory_t, idx, self.z_s)  # student anchor vs teacher memory
            out_t = self._scores(g_t, self.memory_s, idx, self.z_t)  # teacher anchor vs student memory
            loss_s = nce_loss(out_s, self.n_data)
            loss_t = nce_loss(out_t, self.n_data)
            if self.training:  # after scoring: the positive is the memory of the previous visit
                self._update(self.memory_s, index, g_s)
                self._update(self.memory_t, index, g_t)
        w = self.cfg.beta * self.params.weight
        return {"crd_student": w * loss_s, "crd_teacher": w * loss_t}

    def feature_formula(self) -> str:
        p = self.params
        return (
            f" + {self.cfg.beta:g}*{p.weight:g}*[NCE_s + NCE_t](K={self.k}, tau={p.nce_t:g}, m={p.nce_m:g})"
            + self.fixed_or_trained("embeddings")
        )
