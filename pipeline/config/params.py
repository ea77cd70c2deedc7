"""A run's MLflow params: its flattened config without the sections that do not apply to its
dataset format and models, so that comparing runs in the UI shows settings that did something
(a Wound run carries no `dataset.bags.*`, a 2-D model no `volume.*`). Only the params change:
config hashes (resume, teacher reuse) and config.yaml are computed from the whole config."""

from __future__ import annotations

from typing import Any

from core.schema import ExperimentConfig, ModelConfig
from pipeline.config.loader import flatten

# a single-modality model joins nothing: of its fusion section only `dim`, its width, is read
JOINING = tuple(f"fusion.{k}" for k in ("name", "layers", "heads", "dropout", "aux_weight", "params"))


def _model_unused(m: ModelConfig, role: str) -> list[str]:
    """Prefixes of a role's sections its model does not read (models/model.py builds one of a
    3-D network, DSMIL over vision instances, or vision and/or text joined by a fusion)."""
    if m.volume.name != "none":  # the 3-D network reads the volume alone
        unused = ["vision.", "text.", "fusion.", "mil."]
    else:
        unused = ["volume."]
        if m.mil.name != "none":  # DSMIL over the vision backbone's instances: no text, no fusion
            unused += ["text.", "fusion."]
        else:
            unused += ["mil."]
            if m.modalities != "both":
                unused += [*JOINING, "text." if m.modalities == "image" else "vision."]
    if m.vision.attention == "none" and "vision." not in unused:
        unused += ["vision.attention_"]  # its width, heads and layers; `attention: none` stays
    return [f"{role}.{p}" for p in unused]


def unused_prefixes(cfg: ExperimentConfig) -> list[str]:
    """Param-key prefixes that do not apply to this configuration."""
    d = cfg.dataset
    out = [] if d.is_bags else ["dataset.bags."]
    if d.format != "csv":
        out.append("dataset.table.")
    if d.format != "chestxray":
        out.append("dataset.subset")
    if cfg.loss.label_loss != "ldam_drw":
        out.append("loss.ldam.")
    for role in ("teacher", "student"):
        out += _model_unused(getattr(cfg, role), role)
    return out


def run_params(cfg: ExperimentConfig) -> dict[str, Any]:
    """The flattened config (pipeline.config.loader.flatten) less what does not apply."""
    drop = tuple(unused_prefixes(cfg))
    return {k: v for k, v in flatten(cfg).items() if not k.startswith(drop)}
