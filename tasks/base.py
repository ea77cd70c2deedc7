"""The task-kind extension point.

A kind is built per dataset from its outputs: task name -> the names of that task's classes
(multiclass: one softmax over them) or labels (multilabel: one sigmoid each). Everything that
depends on what the targets are goes through it:

- `head(dim, task, dropout)`: the output layer of a task;
- `encode_labels(task, values)`: raw label values of the samples -> the target tensor;
- `label_loss(name, gamma, counts, n_train, options)`: the supervised term (an nn.Module called
  as `term(task, logits, target)`, with `.term_name`, the name it is logged under, and an
  optional `start_epoch(epoch, epochs)` the trainer calls, e.g. for deferred re-weighting);
  `options` is the whole LossConfig, for terms with settings of their own (`loss.ldam`);
- `kd(student_logits, teacher_logits, temperature)`: the logit-level distillation term;
- `probabilities(logits)`; `metrics(pred, tune=None)`: flat metrics (and per-task extras such
  as confusion matrices); `tune` holds dev predictions where a metric needs tuning (thresholds),
  never test's; `predictions_csv(pred)`: what is saved per test sample.

The names of the common metrics are shared by every kind, so studies and reports need not
branch: `avg_f1` (mean macro-F1 over tasks) and `<task>/f1`, `<task>/auc`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from core.errors import ConfigError
from core.registry import Registry

TASK_KINDS: Registry[type[TaskKind]] = Registry("task kind")


@dataclass
class Predictions:
    """Per task: probabilities [N, K] and targets ([N] class ids, or [N, K] 0/1 labels);
    `index`: dataset positions [N]."""

    probs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    index: np.ndarray


class TaskKind:
    name: ClassVar[str] = ""
    label_losses: ClassVar[tuple[str, ...]] = ()  # valid values of loss.label_loss

    def __init__(self, outputs: Mapping[str, Sequence[str]]) -> None:
        self.outputs = {t: tuple(names) for t, names in outputs.items()}
        self.tasks = tuple(self.outputs)

    def width(self, task: str) -> int:
        return len(self.outputs[task])

    def head(self, dim: int, task: str, dropout: float) -> nn.Module:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, self.width(task)))

    def encode_labels(self, task: str, values: Sequence[Any]) -> Tensor:
        raise NotImplementedError

    def label_counts(self, task: str, target: Tensor) -> tuple[int, ...]:
        """Train-split count per class (or positives per label): class weights, pos_weight."""
        raise NotImplementedError

    def label_loss(
        self,
        name: str,
        gamma: float,
        counts: Mapping[str, tuple[int, ...]],
        n_train: int,
        options: Any = None,
    ) -> nn.Module:
        raise NotImplementedError

    def check_label_loss(self, name: str) -> None:
        """`name` must be one of this kind's `label_losses` (a one-line ConfigError otherwise)."""
        if name not in self.label_losses:
            raise ConfigError(
                f"loss.label_loss: {name!r} is not a {self.name} label loss (valid: {', '.join(self.label_losses)})"
            )

    def kd(self, student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
        raise NotImplementedError

    def collapsed(self, pred: Predictions) -> bool:
        """Whether the model predicts one class for every sample (training-stability evidence)."""
        return False

    def summary(self, values: Mapping[str, float], extras: Mapping[str, Any]) -> dict:
        """`metrics.json` of a run: the same keys for every model of a kind, so cross-validation
        summaries can compare models. Default: the flat test metrics."""
        return {"split": "test", **values}

    def probabilities(self, logits: Tensor) -> Tensor:
        raise NotImplementedError

    def metrics(self, pred: Predictions, tune: Predictions | None = None) -> tuple[dict[str, float], dict]:
        raise NotImplementedError

    def predictions_csv(self, pred: Predictions) -> str:
        raise NotImplementedError
