"""`mmd`: logit KD plus a multi-kernel maximum mean discrepancy between the fused features.

Gretton et al., JMLR 2012, "A Kernel Two-Sample Test" (MMD); the multi-kernel RBF form of
Long et al., ICML 2015, "Learning Transferable Features with Deep Adaptation Networks" (DAN,
the common ``mmd_rbf`` implementation); used for KD as distribution matching of features
(Huang & Wang, 2017, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer")::

    L = L_logit + beta * w * MMD^2(S, T)
    MMD^2 = mean_ij k(s_i, s_j) + mean_ij k(t_i, t_j) - 2 mean_ij k(s_i, t_j)   (biased, >= 0)
    k(x, y) = sum_{q=0}^{n-1} exp(-||x - y||^2 / (sigma^2 * mul^q)),
    sigma^2 = mean ||z_a - z_b||^2 over pairs a != b of the joint sample Z = S u T, / mul^(n // 2)

n = `params.kernel_num` = 5 kernels, mul = `params.kernel_mul` = 2 (bandwidths sigma^2 * {1/4,
1/2, 1, 2, 4}), w = `params.weight`.

Convention: S = L2-normalised P(student.fused) (P: student_dim -> teacher_dim, trainable),
T = L2-normalised, detached `teacher.fused` (the `mmd` term, losses/terms/mmd.py); only
the student is projected. The bandwidth sigma^2 is computed from the data and DETACHED (a
scale choice, not something to optimise), but the kernel values are computed with gradient: the
popular reference that evaluates the kernels under ``no_grad`` returns a constant and trains
nothing. fp32. Term: ``mmd`` (already multiplied by beta and w).

YAML::

    loss: {name: mmd, alpha: 0.5, temperature: 4.0, beta: 1.0,
           params: {weight: 5.0, kernel_num: 5, kernel_mul: 2.0}}

Magnitude at initialisation: MMD^2 between two random batches is small (0.225 measured), most of
it the finite-sample part of the biased estimator (~ 2 * (5 - mean off-diagonal kernel) / B ~
0.19 at B 32), which the student can still reduce because its batch is paired with the teacher's
(MMD^2 = 0 when S = T). Hence the default weight w = 5. Measured by
`tests/test_losses.py::measured_ratio` (printed by `PYTHONPATH=. python tests/test_losses.py`):
default config (alpha 0.5, beta 1, default params), random N(0, 1) logits and features,
student_dim 64, teacher_dim 96, B 32, tasks of 3 and 4 classes, n_train 50, mean over 20 seeds
of (sum of the feature terms) / (the "ce" term, 1.58 there); `test_feature_to_ce_ratio_at_init`
keeps the number below within 10%. Measured: mmd 1.13, feature / ce = 0.71.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.schema import non_negative, positive
from losses.base import LOSSES
from losses.composed import Preset, TermSpec


@dataclass(frozen=True)
class MMDParams:
    weight: float = non_negative(default=5.0)  # w, inside beta
    kernel_num: int = positive(default=5)
    kernel_mul: float = positive(default=2.0)


@LOSSES.register("mmd")
class MMDLoss(Preset):
    Params = MMDParams

    def term_list(self) -> list[TermSpec]:
        p = self.params
        options = {"feature": "fused", "kernel_num": p.kernel_num, "kernel_mul": p.kernel_mul}
        mmd = TermSpec(
            term="mmd", weight=self.cfg.beta * p.weight, params={**options, "trained": self.trains_params}
        )
        return [*self.kd_terms(), mmd]

    def feature_formula(self) -> str:
        p = self.params
        return (
            f" + {self.cfg.beta:g}*{p.weight:g}*MMD^2(P s, t)(kernels={p.kernel_num}, mul={p.kernel_mul:g})"
            + self.fixed_or_trained("P")
        )
