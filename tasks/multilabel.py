"""`kind: multilabel`: K sigmoid outputs per task, each sample any subset of the task's labels
(NIH ChestX-ray14: one task, 14 findings; "No Finding" is the empty set).

Label terms (`loss.label_loss`), from `losses.multilabel_terms`: `bce`, `weighted_bce` (BCE
with pos_weight = negatives / positives per label on train: the seed's "BCE + class weights")
and `focal` (sigmoid focal, Lin et al. 2017, alpha 0.25, gamma `loss.focal_gamma`). KD term:
per-label binary KL between sigmoid(z_t/T) and sigmoid(z_s/T), times T^2.

Metrics per task: macro AUC over the labels with both classes present (`<task>/auc`), macro-F1
at 0.5 (`<task>/f1`), macro-F1 with per-label thresholds tuned on the dev predictions passed
as `tune` (`<task>/f1_tuned`; never tuned on the split scored), per-label AUC, precision,
recall and threshold; `avg_f1` and `avg_auc` average over tasks. Extras: the most frequent
(false-positive, false-negative) label pairs per image.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from losses.multilabel_terms import bce_pos_weight, multilabel_kd, pos_weight_from_counts, sigmoid_focal
from tasks.base import TASK_KINDS, Predictions, TaskKind
from tasks.multilabel_metrics import confused_pairs, multilabel_metrics, tune_thresholds


class MultilabelLoss(nn.Module):
    """The supervised term per task, mean over batch and labels; logged as `term_name`: the
    loss's name, except focal, logged as `label_focal` for its role, so that it never shares a
    name with the focal term X-Lite adds on top (`losses.xlite_kd`)."""

    def __init__(self, name: str, gamma: float, pos_weight: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.name, self.gamma = name, gamma
        self.term_name = "label_focal" if name == "focal" else name
        for task, w in pos_weight.items():
            self.register_buffer(f"w_{task}", w)

    def forward(self, task: str, logits: Tensor, target: Tensor) -> Tensor:
        if self.name == "focal":
            return sigmoid_focal(logits, target, alpha=0.25, gamma=self.gamma)
        weight = getattr(self, f"w_{task}") if self.name == "weighted_bce" else None
        return bce_pos_weight(logits, target, weight)


@TASK_KINDS.register("multilabel")
class Multilabel(TaskKind):
    name = "multilabel"
    label_losses = ("bce", "weighted_bce", "focal")

    def encode_labels(self, task: str, values: Sequence[Any]) -> Tensor:
        """Each value: the set of positive label names, or a 0/1 vector in label order."""
        names = self.outputs[task]
        index = {c: i for i, c in enumerate(names)}
        out = torch.zeros(len(values), len(names))
        for i, v in enumerate(values):
            if isinstance(v, (set, frozenset, list, tuple)) and all(isinstance(x, str) for x in v):
                out[i, [index[x] for x in v]] = 1.0
            else:
                out[i] = torch.as_tensor(v, dtype=torch.float)
        return out

    def label_counts(self, task: str, target: Tensor) -> tuple[int, ...]:
        return tuple(int(x) for x in target.sum(0))

    def label_loss(
        self,
        name: str,
        gamma: float,
        counts: Mapping[str, tuple[int, ...]],
        n_train: int,
        options: Any = None,
    ) -> nn.Module:
        self.check_label_loss(name)
        pos = {t: torch.tensor(c, dtype=torch.float) for t, c in counts.items()}
        return MultilabelLoss(
            name, gamma, {t: pos_weight_from_counts(p, n_train - p) for t, p in pos.items()}
        )

    def kd(self, student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
        return multilabel_kd(student_logits, teacher_logits, temperature)

    def probabilities(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits.float())

    def metrics(self, pred: Predictions, tune: Predictions | None = None) -> tuple[dict[str, float], dict]:
        out: dict[str, float] = {}
        pairs: dict[str, list] = {}
        for task, names in self.outputs.items():
            y, p = pred.labels[task], pred.probs[task]
            tuned = (
                tune_thresholds(tune.labels[task], tune.probs[task])
                if tune is not None
                else np.full(len(names), 0.5)
            )
            m = multilabel_metrics(y, p, names, tuned)
            out[f"{task}/auc"] = m["auc_macro"]
            out[f"{task}/f1"] = m["f1_macro@0.5"]
            out[f"{task}/f1_tuned"] = m["f1_macro@tuned"]
            for key, value in m.items():
                if "/" in key:  # auc/<label>, precision/<label>, recall/<label>, threshold/<label>
                    out[f"{task}/{key}"] = value
            pairs[task] = confused_pairs(y, p, tuned, names)
        out["avg_f1"] = float(np.mean([out[f"{t}/f1"] for t in self.tasks]))
        out["avg_auc"] = float(np.nanmean([out[f"{t}/auc"] for t in self.tasks]))
        return out, {"confused_pairs": pairs}

    def predictions_csv(self, pred: Predictions) -> str:
        """index, then per task and label: the true 0/1 label and the probability."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(
            ["index"]
            + [f"{t}/{c}/{x}" for t, names in self.outputs.items() for c in names for x in ("label", "p")]
        )
        for i in range(len(pred.index)):
            row: list = [int(pred.index[i])]
            for t, names in self.outputs.items():
                for j in range(len(names)):
                    row += [int(pred.labels[t][i, j]), f"{pred.probs[t][i, j]:.6f}"]
            w.writerow(row)
        return buf.getvalue()
