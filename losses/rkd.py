"""`rkd`: logit KD plus Relational Knowledge Distillation on the fused features.

Park et al., CVPR 2019, "Relational Knowledge Distillation"::

    L = L_logit + beta * ( w_d * L_dist + w_a * L_angle )
    psi_D(x_i, x_j)      = ||x_i - x_j||_2 / mu,  mu = mean of ||x_k - x_l|| over pairs k != l
    psi_A(x_i, x_j, x_k) = < (x_i - x_j)/||x_i - x_j||, (x_k - x_j)/||x_k - x_j|| >
    L_dist  = mean over ordered pairs i != j   of smoothL1(psi_D(s_i, s_j), psi_D(t_i, t_j))
    L_angle = mean over distinct (i, j, k)     of smoothL1(psi_A(s...), psi_A(t...))

with the paper's weights w_d = 25, w_a = 50 (`params.dist_weight`, `params.angle_weight`), then
beta. Smooth-L1 is PyTorch's (Huber, delta 1).

Convention: `student.fused` vs `teacher.fused` (the inputs of the task heads). No projection:
RKD transfers relations (normalised distances and angles between samples of the batch), which
are defined in each network's own space whatever its width, so the student is compared as it is
(a trainable projection would only add a free map that can absorb the mismatch). Both sides
are L2-normalised per sample (`params.normalize`, default true, the project-wide feature-term
convention; the paper's own scale invariance comes from dividing distances by mu and from the
angle being scale-free, both kept); the teacher is detached. fp32.

Small batches: the angle term needs 3 samples and the distance term 2; below that the term is
an exact zero that still depends on the student features (so `backward` works and no NaN is
produced). Coincident samples (distance 0) are clamped, not divided by. Terms: ``rkd_dist``,
``rkd_angle`` (already multiplied by beta and their weight).

YAML::

    loss: {name: rkd, alpha: 0.5, temperature: 4.0, beta: 1.0,
           params: {dist_weight: 25.0, angle_weight: 50.0}}

Magnitude at initialisation: measured by `tests/test_losses.py::measured_ratio` (printed by
`PYTHONPATH=. python tests/test_losses.py`): default config (alpha 0.5, beta 1, default params),
random N(0, 1) logits and features, student_dim 64, teacher_dim 96, B 32, tasks of 3 and 4
classes, n_train 50, mean over 20 seeds of (sum of the feature terms) / (the "ce" term, 1.58
there); `test_feature_to_ce_ratio_at_init` keeps the number below within 10%. Measured: rkd_dist
0.083, rkd_angle 0.251, feature / ce = 0.21. This is below the label term because random
features in high dimension have nearly uniform relations (all normalised distances ~ 1, all
angles ~ 60 degrees), so the relational mismatch is small; structured teacher features give
larger values. The paper's weights (25, 50) are kept as defaults, as the method prescribes;
raise beta (e.g. 4) for a term as large as the label term at initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.schema import non_negative
from losses.base import LOSSES
from losses.composed import Preset, TermSpec


@dataclass(frozen=True)
class RKDParams:
    dist_weight: float = non_negative(default=25.0)  # w_d, as in the paper
    angle_weight: float = non_negative(default=50.0)  # w_a, as in the paper
    normalize: bool = True  # L2-normalise each sample's features first (both sides)


@LOSSES.register("rkd")
class RKDLoss(Preset):
    Params = RKDParams

    def term_list(self) -> list[TermSpec]:
        p, beta = self.params, self.cfg.beta
        relation = {"feature": "fused", "normalize": p.normalize}
        return self.kd_terms() + [
            TermSpec(term="rkd_distance", name="rkd_dist", weight=beta * p.dist_weight, params=relation),
            TermSpec(term="rkd_angle", name="rkd_angle", weight=beta * p.angle_weight, params=relation),
        ]

    def feature_formula(self) -> str:
        p = self.params
        return f" + {self.cfg.beta:g}*[{p.dist_weight:g}*RKD_dist + {p.angle_weight:g}*RKD_angle]"
