"""`xlite_kd`: the X-Lite chest X-ray objective (seed 004), for multilabel datasets::

    L = alpha * T^2 * KL_bin(sigmoid(z_t/T) || sigmoid(z_s/T))      (kd, the kind's KD term)
      + (1 - alpha) * label(z_s, y)                                   (the label term, e.g.
                                                                       weighted_bce; with
                                                                       label_loss focal:
                                                                       label_focal)
      + lambda * Focal(z_s, y)                                        (focal)

KL_bin is the per-label Bernoulli KL, mean over labels and batch (`losses.multilabel_terms`);
Focal is the sigmoid focal loss of Lin et al. (2017, "Focal Loss for Dense Object Detection"),
equal to `torchvision.ops.sigmoid_focal_loss(..., reduction="mean")`. lambda is not scaled by
(1 - alpha): the seed adds the focal term on top, so a hard-label signal stays at alpha = 1.
Without a teacher: the label term at weight 1, plus the focal term. YAML::

    loss: {name: xlite_kd, alpha: 0.7, temperature: 4.0, label_loss: weighted_bce,
           focal_gamma: 2.0, params: {focal_weight: 0.5, focal_alpha: 0.25}}
"""

from __future__ import annotations

from dataclasses import dataclass

from core.schema import non_negative
from losses.base import LOSSES
from losses.composed import Preset, TermSpec


@dataclass(frozen=True, kw_only=True)
class XLiteParams:
    focal_weight: float = non_negative(default=0.5)  # lambda
    focal_alpha: float = 0.25  # < 0: no alpha weighting, as torchvision


@LOSSES.register("xlite_kd")
class XLiteKD(Preset):
    Params = XLiteParams
    kinds = ("multilabel",)

    def term_list(self) -> list[TermSpec]:
        p = self.params
        focal = TermSpec(term="focal", weight=p.focal_weight, params={"alpha": p.focal_alpha})
        return [*self.kd_terms(), focal]  # gamma: loss.focal_gamma, as the label term's

    def feature_formula(self) -> str:
        p = self.params
        return f" + {p.focal_weight:g}*Focal(alpha={p.focal_alpha:g}, gamma={self.cfg.focal_gamma:g})"
