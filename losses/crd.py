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
Terms: ``crd_student`` (= beta * w * L_s) and ``crd_teacher`` (= beta * w * L_t): the preset is
the term list label, logit KD and the `crd` term (losses/terms/crd.py) at weight beta * w.

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

from collections.abc import Iterator
from dataclasses import asdict, dataclass

from torch import nn

from core.schema import non_negative
from losses.base import LOSSES
from losses.composed import Preset, TermSpec
from losses.terms.crd import CRDTerm, CRDTermParams, Embed, nce_loss  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class CRDParams(CRDTermParams):
    """The term's options, and its weight w (inside beta)."""

    weight: float = non_negative(default=0.1)


@LOSSES.register("crd")
class CRDLoss(Preset):
    Params = CRDParams

    def term_list(self) -> list[TermSpec]:
        p = asdict(self.params)
        w = p.pop("weight")
        return [*self.kd_terms(), TermSpec(term="crd", weight=self.cfg.beta * w, params=p)]

    @property
    def crd(self) -> CRDTerm:
        """The contrastive term (its memory, embeddings and Z), for inspection."""
        return self.parts[-1]

    # the term's state, read where the tests and a debugger look for it
    embed_s = property(lambda self: self.crd.embed_s)
    embed_t = property(lambda self: self.crd.embed_t)
    memory_s = property(lambda self: self.crd.memory_s)
    memory_t = property(lambda self: self.crd.memory_t)
    z_s = property(lambda self: self.crd.z_s)
    z_t = property(lambda self: self.crd.z_t)
    k = property(lambda self: self.crd.k)
    last_contrast_index = property(lambda self: self.crd.last_contrast_index)

    def trained_parameters(self) -> Iterator[nn.Parameter]:
        """CRD's embeddings are trained unless `loss.train_params: false` (the class default)."""
        if not self.trains_params:
            self.requires_grad_(False)
        return (p for p in self.parameters() if p.requires_grad)

    def feature_formula(self) -> str:
        p = self.params
        return f" + {self.cfg.beta:g}*{p.weight:g}*{self.crd.text()}" + self.fixed_or_trained("embeddings")
