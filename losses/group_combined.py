"""`group_combined`: the research group's `combined` loss (their loss study and tuned recipe,
tables A and C of /work/shared/reference/README.md), built from that description, not from
their code: `group_vanilla` plus an in-batch contrastive term::

    L = sum over tasks CE(z_s, y)
      + alpha * T^2 * sum over tasks KL(softmax(z_t / T) || softmax(z_s / T))     (batchmean)
      + beta * [ MSE(s_img, W_img t_img) + MSE(s_txt, W_txt t_txt) ]
      + gamma * mean over modalities InfoNCE(s_m, W_m t_m)
    InfoNCE(s, u) = CE(S, [0, 1, ..., B-1]),  S_ij = <s_i / |s_i|, u_j / |u_j|> / tau

InfoNCE is van den Oord et al., 2018 ("Representation Learning with Contrastive Predictive
Coding"), in the in-batch, CLIP-style form (Radford et al., 2021): row i (a student sample)
must pick column i (the projected teacher feature of the same sample) among the batch, cross-
entropy averaged over rows, one direction (student -> teacher). tau =
`params.infonce_temperature` (0.1). The mean runs over the modalities present on both sides
(image and text: their average).

Convention as `group_vanilla`: additive (label term at weight 1, alpha may exceed 1); W_img,
W_txt are the same fixed random `nn.Linear(teacher_dim, student_dim)` maps (shared by the MSE
and InfoNCE terms, not trained unless `loss.train_params: true`); the teacher is detached; a
modality that is None on either side contributes no term. fp32. Terms: ``ce``, ``kd``,
``mse_image``, ``mse_text``, ``infonce`` (each already multiplied by its weight).

Defaults (the group's, applied when unset): alpha 1, T 4, beta 100; `params.gamma` 10,
`params.infonce_temperature` 0.1. The group's tuned recipe (table C): alpha .957, beta 64.65,
T 4.737.

YAML::

    loss: {name: group_combined}          # alpha 1, temperature 4, beta 100, gamma 10
    loss: {name: group_combined, alpha: 0.957, beta: 64.65, temperature: 4.737,
           params: {gamma: 10.0, infonce_temperature: 0.1}}
"""

from __future__ import annotations

from dataclasses import dataclass

from core.schema import non_negative, positive
from losses.base import LOSSES
from losses.composed import TermSpec
from losses.group_vanilla import GroupVanillaKD


@dataclass(frozen=True)
class GroupCombinedParams:
    gamma: float = non_negative(default=10.0)  # weight of the InfoNCE term
    infonce_temperature: float = positive(default=0.1)  # tau (loss.temperature is the KD's T)


@LOSSES.register("group_combined")
class GroupCombinedKD(GroupVanillaKD):
    Params = GroupCombinedParams
    defaults = {"alpha": 1.0, "temperature": 4.0, "beta": 100.0}

    def term_list(self) -> list[TermSpec]:
        p = self.params
        options = {"features": ("image", "text"), "project": "teacher", "trained": self.trains_params}
        nce = TermSpec(
            term="infonce", weight=p.gamma, params={**options, "temperature": p.infonce_temperature}
        )
        return [*super().term_list(), nce]  # the same W maps as the MSE terms

    def feature_formula(self) -> str:
        p = self.params
        return (
            self.mse_formula()
            + f" + {p.gamma:g}*mean_m InfoNCE(s_m, W_m t_m; tau={p.infonce_temperature:g})"
            + self.fixed_or_trained("W")
        )
