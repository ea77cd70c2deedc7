"""`none`: the no-KD baseline. The student learns from labels only; the teacher is not used.

    L = sum over tasks label(z_s, y)          (alpha, T and beta are ignored)

YAML: ``loss: {name: none, label_loss: ce}``
"""

from losses.base import LOSSES, DistillLoss


@LOSSES.register("none")
class NoKD(DistillLoss):
    uses_teacher = False
    convex = False  # alpha is ignored: the label term keeps weight 1 whatever alpha says
