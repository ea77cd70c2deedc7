"""`none`: the no-KD baseline. The student learns from labels only; the teacher is not used.

    L = sum over tasks label(z_s, y)          (alpha, T and beta are ignored)

YAML: ``loss: {name: none, label_loss: ce}``
"""

from losses.base import LOSSES
from losses.composed import Preset, TermSpec


@LOSSES.register("none")
class NoKD(Preset):
    uses_teacher = False
    convex = False  # alpha is ignored: the label term keeps weight 1 whatever alpha says

    def term_list(self) -> list[TermSpec]:
        return [TermSpec(term="label", weight=1.0)]
