"""`vanilla`: logit distillation (Hinton et al., 2015), per task head, summed over tasks.

    L = sum over tasks [ alpha * T^2 * KL(p_t^T || p_s^T) + (1 - alpha) * label(z_s, y) ]

As terms (losses/composed.py `Preset.kd_terms`): label at 1 - alpha, logit_kd at alpha.
YAML: ``loss: {name: vanilla, alpha: 0.7, temperature: 4.0}``
"""

from losses.base import LOSSES
from losses.composed import Preset


@LOSSES.register("vanilla")
class VanillaKD(Preset):
    pass
