"""Task kinds: importing this package imports every kind in it, so each registers itself.

A kind is what a dataset's targets are (a dataset YAML names it: `kind: multilabel`). It
decides the model's head, the label term, the KD term, the metrics and the saved predictions;
models, losses, training, evaluation and reports ask the kind instead of branching on it. A new
kind is one file in this folder with one decorator (`@TASK_KINDS.register("...")`)."""

import importlib
import pkgutil

from tasks.base import TASK_KINDS, Predictions, TaskKind

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["TASK_KINDS", "Predictions", "TaskKind"]
