"""`group_vanilla`: the research group's `vanilla` loss (their loss study, table A of
/work/shared/reference/README.md), built from that description, not from their code::

    L = sum over tasks CE(z_s, y)
      + alpha * T^2 * sum over tasks KL(softmax(z_t / T) || softmax(z_s / T))     (batchmean)
      + beta * [ MSE(s_img, W_img t_img) + MSE(s_txt, W_txt t_txt) ]

Convention: additive, unlike kdsweep's `vanilla` (convex, `losses.base`): the label term keeps
weight 1 whatever alpha is, and alpha may exceed 1 (`convex = False`). The label term is the
one `loss.label_loss` names (CE by default, as the group's). s_img / s_txt are the student's
per-modality features at its fusion width (`student.image` / `student.text`), t_img / t_txt the
teacher's (`teacher.image` / `teacher.text`, width teacher_dim, detached). W_img, W_txt are
`nn.Linear(teacher_dim, student_dim)` maps created here with PyTorch's default (random)
initialisation and, as in the group's setup, NOT trained by default: fixed random projections
of the teacher (`loss.train_params: true` trains them with the student). MSE is PyTorch's mean
over batch and features. A modality that is None on either side contributes no term. fp32.
Terms: ``ce``, ``kd``, ``mse_image``, ``mse_text`` (each already multiplied by its weight).

Defaults (the group's, applied when `loss.alpha`, `loss.temperature`, `loss.beta` are unset):
alpha 1, T 2, beta 100. Note that an experiment file which sets alpha or temperature for
kdsweep's losses (sweeps/experiments/default.yaml does) sets them for this loss too.

YAML::

    loss: {name: group_vanilla}          # alpha 1, temperature 2, beta 100, W fixed
    loss: {name: group_vanilla, alpha: 1.5, beta: 50.0, train_params: true}
"""

from __future__ import annotations

from torch import nn

from losses.base import LOSSES
from losses.composed import Preset, TermSpec

MODALITIES = ("image", "text")


@LOSSES.register("group_vanilla")
class GroupVanillaKD(Preset):
    kinds = ("multiclass",)
    defaults = {"alpha": 1.0, "temperature": 2.0, "beta": 100.0}
    convex = False
    trainable = False

    def term_list(self) -> list[TermSpec]:
        fixed = {"metric": "mse", "project": "teacher", "trained": self.trains_params}
        return self.kd_terms() + [
            TermSpec(term="align", name=f"mse_{m}", weight=self.cfg.beta, params={"feature": m, **fixed})
            for m in MODALITIES
        ]

    @property
    def w_image(self) -> nn.Module:
        """W_img (the teacher's image features -> the student's width), shared with InfoNCE."""
        return self.projection("teacher", "image")

    @property
    def w_text(self) -> nn.Module:
        return self.projection("teacher", "text")

    def mse_formula(self) -> str:
        return f" + {self.cfg.beta:g}*[MSE(s_img, W_img t_img) + MSE(s_txt, W_txt t_txt)]"

    def feature_formula(self) -> str:
        return self.mse_formula() + self.fixed_or_trained("W")
