"""The DSMIL paper's training objective, `mil.objective: dsmil` (models/dsmil.py is the network).

Li, Li & Eliceiri, CVPR 2021, "Dual-stream Multiple Instance Learning Network for Whole Slide
Image Classification with Self-supervised Contrastive Learning"; reference code binli123/dsmil-wsi,
`train_tcga.py` (`train`: criterion = BCEWithLogitsLoss, loss = 0.5 * bag_loss + 0.5 * max_loss;
`test`: predictions from sigmoid(bag_prediction)). For a batch of B bags, K classes, DSMIL's
max-instance scores s_max [B, K] and bag scores s_bag [B, K], and the bag labels y::

    Y               = onehot(y, K)  (multiclass; a multilabel target is already its multi-hot row)
    L_dsmil_max     = 0.5 * BCEWithLogits(s_max, Y)      logged as dsmil_max
    L_dsmil_bag     = 0.5 * BCEWithLogits(s_bag, Y)      logged as dsmil_bag
    BCEWithLogits(z, Y) = mean over b and k of -[Y log sigmoid(z) + (1 - Y) log(1 - sigmoid(z))]

Each class is its own sigmoid, as in the reference (a one-hot row trains the other classes' scores
down, not a softmax over them). Both terms are logged already weighted by 0.5 (and by 1 - alpha
under distillation: they are the label term of `losses.base`'s convention), so their sum is the
label part of the objective. The model's `logits` are then the bag score alone (models/model.py),
so prediction and every metric read s_bag: the class decision argmax s_bag is the reference's
argmax sigmoid(s_bag); the probabilities are the task kind's (softmax over s_bag for multiclass,
so they sum to 1 as every multiclass model's do; per-class AUC ranks softmax(s_bag), which is not
the reference's per-class sigmoid).

kdsweep's default (`mil.objective: mean_ce`) is instead the configured label loss (CE, focal,
LDAM, ...) on logits = (s_max + s_bag) / 2, and prediction from that mean.

Distillation: a KD term reads `student.logits` and `teacher.logits`, so under this objective the
student's distilled logits are its bag scores (and a DSMIL teacher trained with it is distilled
from its bag scores). The bag score is what the paper predicts from; the max-instance stream is
supervised by labels only.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor

from models.outputs import ModelOutput

TERMS = ("dsmil_max", "dsmil_bag")  # the logged names of the two halves


def targets(logits: Tensor, target: Tensor) -> Tensor:
    """The BCE targets of `target`: one-hot rows for class ids [B], the 0/1 rows as floats for a
    multi-hot [B, K]; float32 like the logits the terms read."""
    if target.dim() == 1:
        return F.one_hot(target.long(), logits.shape[-1]).float()
    return target.float()


def dsmil_terms(max_logits: Tensor, bag_logits: Tensor, target: Tensor) -> dict[str, Tensor]:
    """{dsmil_max: 0.5 * BCEWithLogits(max_logits, Y), dsmil_bag: 0.5 * BCEWithLogits(bag_logits, Y)}
    for one task (see the module docstring); computed in float32 (autocast safety)."""
    y = targets(bag_logits, target)
    return {
        "dsmil_max": 0.5 * F.binary_cross_entropy_with_logits(max_logits.float(), y),
        "dsmil_bag": 0.5 * F.binary_cross_entropy_with_logits(bag_logits.float(), y),
    }


class DSMILObjective:
    """The paper's label term over `tasks`: `terms(student, labels)` reads the bag scores from
    `student.logits` and the max-instance scores from `student.max_logits` (models/model.py)."""

    term_names = TERMS

    def __init__(self, tasks: tuple[str, ...]) -> None:
        self.tasks = tasks

    def terms(self, student: ModelOutput, labels: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if not student.max_logits:
            raise ValueError(
                "mil.objective dsmil: the model gives no max-instance scores (not a DSMIL model)"
            )
        out: dict[str, Tensor] = {}
        for t in self.tasks:
            for name, value in dsmil_terms(student.max_logits[t], student.logits[t], labels[t]).items():
                out[name] = out[name] + value if name in out else value
        return out
