"""The one typed output of a model forward pass, shared by teacher, student and every loss."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ModelOutput:
    """logits: task -> [B, num_classes]; image/text: per-modality features projected to the
    fusion width [B, D] (None in the other modality's ablation); fused: [B, D], the input of
    the task heads; aux_losses: already-weighted terms a module adds to the training
    objective (e.g. routing balance), summed into the loss and logged by name; max_logits:
    task -> DSMIL's max-instance scores [B, num_classes] (empty for every other model), which
    the paper's objective (losses/dsmil_objective.py) supervises beside the bag score."""

    logits: dict[str, Tensor]
    image: Tensor | None
    text: Tensor | None
    fused: Tensor
    aux_losses: dict[str, Tensor] = field(default_factory=dict)
    max_logits: dict[str, Tensor] = field(default_factory=dict)
