"""`vanilla`: logit distillation (Hinton et al., 2015), per task head, summed over tasks.

    L = sum over tasks [ alpha * T^2 * KL(p_t^T || p_s^T) + (1 - alpha) * label(z_s, y) ]

The formula lives in `losses.base.DistillLoss.logit_terms`; this class adds no feature term.
YAML: ``loss: {name: vanilla, alpha: 0.7, temperature: 4.0}``
"""

from losses.base import LOSSES, DistillLoss


@LOSSES.register("vanilla")
class VanillaKD(DistillLoss):
    pass
