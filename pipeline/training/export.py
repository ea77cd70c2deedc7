"""Trained models as MLflow models (issue 16): the PyTorch flavour, with a signature, an input
example and the code they need, so `mlflow.pytorch.load_model("runs:/<id>/student")` works in a
fresh process without kdsweep's config (models.export.Packed says what goes in and out).

`tracking.log_models` decides which: `chosen` (default) logs every teacher as it is trained and,
at the end of a sweep, the student configuration chosen on dev (pipeline.sweeps.register rebuilds
it from its run's config and checkpoint, logs it with `log_model` and registers it); `all` logs
every teacher and student as they are trained; `none` logs no model. The state-dict checkpoints
stay as they are.
"""

from __future__ import annotations

import torch

from core.schema import ExperimentConfig
from models.export import Packed
from models.model import KDModel
from pipeline import tracking
from pipeline.data.dataset import DataBundle


def packed(model: KDModel, data: DataBundle, cfg: ExperimentConfig) -> tuple[Packed, torch.Tensor]:
    """The model wrapped for serving, its layout taken from the whole test split (text padded to
    the tokenizer's max_length), and the matrix of that split (its first rows: the example)."""
    role = model.role
    test = data.splits["test"]
    batch = next(iter(data.loader("test", len(test))))
    keys = []
    if model.volume is not None:
        keys.append("volume")
    elif model.modalities != "text":
        keys.append("image")
    if model.mil is not None:
        keys.append("instance_mask")
    if model.modalities != "image" and model.volume is None:
        keys += [f"input_ids_{role}", f"attention_mask_{role}"]
    length = getattr(cfg, role).text.tokenizer.max_length
    layout = []
    for k in keys:
        shape = tuple(batch[k].shape[1:])
        if k.startswith(("input_ids_", "attention_mask_")):
            shape = (max(length, shape[0]),)
        layout.append((k, shape, str(batch[k].dtype).removeprefix("torch.")))
    activation = "sigmoid" if data.kind.name == "multilabel" else "softmax"
    module = Packed(model.cpu().eval(), layout, dict(data.label_maps), activation)
    return module, module.batch(batch)


def log_model(log: tracking.RunLog, model: KDModel, data: DataBundle, cfg: ExperimentConfig) -> str:
    """Log `model` as an MLflow model named after its role; returns its model URI."""
    device = next(model.parameters()).device
    module, matrix = packed(model, data, cfg)
    meta = {
        "layout": [list(x) for x in module.layout],
        "columns": module.columns,
        "dataset": cfg.dataset.name,
    }
    try:
        return log.model(module, model.role, matrix[:2].numpy(), meta, three_d=model.volume is not None)
    finally:
        model.to(device)
