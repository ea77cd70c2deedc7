"""`kind: multiclass` (the default): one softmax head per task, each sample one class per task.

Label term: cross-entropy, focal or class-weighted CE (`losses.base.LabelLoss`), or LDAM + DRW
(`losses.ldam_drw`); KD term:
Hinton's T^2 * KL(softmax(z_t/T) || softmax(z_s/T)) (`losses.base.kd_kl`). Metrics per task:
accuracy, macro-F1, macro one-vs-rest AUC over the classes present, precision and recall per
class, a confusion matrix; `avg_f1` is the mean macro-F1 over tasks.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)
from torch import Tensor, nn

from losses.base import LabelLoss, kd_kl
from tasks.base import TASK_KINDS, Predictions, TaskKind


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """Macro one-vs-rest AUC over the classes that have both positives and negatives in `y`
    (for two classes this is the usual binary AUC); NaN when no class qualifies."""
    scores = [roc_auc_score(y == c, p[:, c]) for c in range(p.shape[1]) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(scores)) if scores else float("nan")


@TASK_KINDS.register("multiclass")
class Multiclass(TaskKind):
    name = "multiclass"
    label_losses = ("ce", "focal", "weighted_ce", "ldam_drw")

    def encode_labels(self, task: str, values: Sequence[Any]) -> Tensor:
        index = {c: i for i, c in enumerate(self.outputs[task])}
        return torch.tensor([index[v] for v in values], dtype=torch.long)

    def label_counts(self, task: str, target: Tensor) -> tuple[int, ...]:
        return tuple(int((target == c).sum()) for c in range(self.width(task)))

    def label_loss(
        self,
        name: str,
        gamma: float,
        counts: Mapping[str, tuple[int, ...]],
        n_train: int,
        options: Any = None,
    ) -> nn.Module:
        self.check_label_loss(name)
        if name == "ldam_drw":  # margins from the train counts; `options` is the LossConfig
            from losses.ldam_drw import LDAMDRWLabel

            o = options.ldam if options is not None else None
            kw = {} if o is None else {"max_m": o.max_m, "s": o.s, "drw_epoch": o.drw_epoch, "beta": o.beta}
            return LDAMDRWLabel(dict(counts), **kw)
        return LabelLoss(name, gamma, counts)

    def kd(self, student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
        return kd_kl(student_logits, teacher_logits, temperature)

    def probabilities(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits.float(), -1)

    def metrics(self, pred: Predictions, tune: Predictions | None = None) -> tuple[dict[str, float], dict]:
        """(flat metrics, {"confusion": task -> matrix}); nothing is tuned, `tune` is unused."""
        out: dict[str, float] = {}
        cms: dict[str, np.ndarray] = {}
        for task, classes in self.outputs.items():
            y, p = pred.labels[task], pred.probs[task]
            yhat = p.argmax(1)
            ks = list(range(len(classes)))
            out[f"{task}/acc"] = float(accuracy_score(y, yhat))
            out[f"{task}/balanced_acc"] = float(
                np.mean([(yhat[y == c] == c).mean() for c in ks if (y == c).any()])
            )
            if len(classes) == 2:  # class 1 (the second in label order) is the positive class
                out[f"{task}/sensitivity"] = (
                    float((yhat[y == 1] == 1).mean()) if (y == 1).any() else float("nan")
                )
                out[f"{task}/specificity"] = (
                    float((yhat[y == 0] == 0).mean()) if (y == 0).any() else float("nan")
                )
            out[f"{task}/f1"] = float(f1_score(y, yhat, labels=ks, average="macro", zero_division=0))
            out[f"{task}/auc"] = _auc(y, p)
            prec, rec, _, _ = precision_recall_fscore_support(y, yhat, labels=ks, zero_division=0)
            for c, name in enumerate(classes):
                out[f"{task}/precision/{name}"] = float(prec[c])
                out[f"{task}/recall/{name}"] = float(rec[c])
            cms[task] = confusion_matrix(y, yhat, labels=ks)
        out["avg_f1"] = float(np.mean([out[f"{t}/f1"] for t in self.tasks]))
        return out, {"confusion": cms}

    def collapsed(self, pred: Predictions) -> bool:
        return any(len(p) > 1 and len(np.unique(p.argmax(1))) == 1 for p in pred.probs.values())

    def summary(self, values: Mapping[str, float], extras: Mapping[str, Any]) -> dict:
        """Per task: auc, accuracy, balanced_accuracy, f1, sensitivity and specificity (binary
        tasks; positive = the second class in label order), the confusion matrix (rows: true)."""

        def one(task: str) -> dict:
            classes = self.outputs[task]
            get = lambda k: values.get(f"{task}/{k}", float("nan"))  # noqa: E731
            return {
                "task": task,
                "classes": list(classes),
                "positive_class": classes[1] if len(classes) == 2 else None,
                "auc": get("auc"),
                "accuracy": get("acc"),
                "balanced_accuracy": get("balanced_acc"),
                "f1": get("f1"),
                "sensitivity": get("sensitivity"),
                "specificity": get("specificity"),
                "confusion_matrix": np.asarray(extras["confusion"][task]).tolist(),
            }

        tasks = [one(t) for t in self.tasks]
        return {"split": "test", **tasks[0]} if len(tasks) == 1 else {"split": "test", "tasks": tasks}

    def predictions_csv(self, pred: Predictions) -> str:
        """index, then per task: true class id, predicted class id, one probability per class."""
        buf = io.StringIO()
        w = csv.writer(buf)
        header = ["index"]
        for t, classes in self.outputs.items():
            header += [f"{t}/label", f"{t}/pred"] + [f"{t}/p/{c}" for c in classes]
        w.writerow(header)
        for i in range(len(pred.index)):
            row: list = [int(pred.index[i])]
            for t in self.outputs:
                p = pred.probs[t][i]
                row += [int(pred.labels[t][i]), int(p.argmax())] + [f"{x:.6f}" for x in p]
            w.writerow(row)
        return buf.getvalue()
