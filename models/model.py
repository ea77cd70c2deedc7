"""One model class for teacher and student.

    image --vision backbone--> Linear+LN --> v [B, D] \\
                                                    fusion --> fused [B, D] --> one head per task
    text  --text backbone----> Linear+LN --> t [B, D] /

D is the fusion width. With `mil.name: dsmil` (bag datasets) the vision backbone encodes each
instance of a bag and DSMIL (models/dsmil.py) gives the bag's logits; `fused` is its bag embedding.
Its logits follow `mil.objective`: `mean_ce` (default), the mean of the max-instance and bag
scores; `dsmil` (the paper's), the bag score alone, with the max-instance scores beside it for
the objective's second term (losses/dsmil_objective.py).
With `volume.name` (resnet3d, swin3d: models/volume3d.py) a MONAI 3-D network encodes the whole
volume (`volume` in the batch) and the task heads read its pooled features, which are `fused`.
`modalities: image` or `text` is the single-modality ablation: the other
branch is not built and `fused` is that modality's projection. The model reads the token ids
of its role (`input_ids_teacher` or `input_ids_student`) from the shared batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from core.schema import ModelConfig
from models.backbones import build_text, build_vision
from models.fusions import build_fusion
from models.outputs import ModelOutput


class KDModel(nn.Module):
    def __init__(self, cfg: ModelConfig, kind: Any, vocab_size: int, channels: int, role: str) -> None:
        """`kind`: the dataset's task kind (tasks.TaskKind), which builds one head per task."""
        super().__init__()
        self.role, self.modalities = role, cfg.modalities
        d = cfg.fusion.dim
        self.vision = self.text = self.fusion = self.mil = None
        self.mil_objective: str | None = None  # what a MIL model trains on (mil.objective)
        self.proj_image = self.proj_text = self.volume = None
        self.tasks = tuple(kind.tasks)
        if cfg.volume.name != "none":  # whole volumes: a 3-D encoder, then the kind's heads
            from models.volume3d import build_volume  # MONAI is imported only by a 3-D model

            self.volume = build_volume(cfg.volume, channels, key=f"{role}.volume")
            self.heads = nn.ModuleList(kind.head(self.volume.out_dim, t, cfg.dropout) for t in self.tasks)
            self.feature_dim = self.volume.out_dim
            return
        if cfg.mil.name == "dsmil":  # bags: the vision backbone encodes instances, DSMIL scores bags
            self._build_mil(cfg, kind, channels, role)
            return
        if cfg.modalities in ("both", "image"):
            self.vision = build_vision(cfg.vision, channels, key=f"{role}.vision")
            self.proj_image = nn.Sequential(nn.Linear(self.vision.out_dim, d), nn.LayerNorm(d))
        if cfg.modalities in ("both", "text"):
            self.text = build_text(cfg.text, vocab_size, key=f"{role}.text")
            self.proj_text = nn.Sequential(nn.Linear(self.text.out_dim, d), nn.LayerNorm(d))
        if cfg.modalities == "both":
            self.fusion = build_fusion(cfg.fusion, f"{role}.fusion")
        # A list, not a ModuleDict: task names such as "type" clash with nn.Module attributes.
        self.heads = nn.ModuleList(kind.head(d, t, cfg.dropout) for t in self.tasks)
        self.feature_dim = d

    def _build_mil(self, cfg: ModelConfig, kind: Any, channels: int, role: str) -> None:
        from models.dsmil import DSMIL

        (task,) = self.tasks
        self.vision = build_vision(cfg.vision, channels, key=f"{role}.vision")
        m = cfg.mil
        self.mil = DSMIL(
            self.vision,
            self.vision.out_dim,
            kind.width(task),
            query_dim=m.query_dim,
            passing_v=m.passing_v,
            dropout_v=m.dropout_v,
            value_dim=None,
        )
        self.mil_objective = m.objective
        self.heads = nn.ModuleList()
        self.feature_dim = self.mil.embedding_dim  # the bag embedding: what feature KD terms see

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        if self.volume is not None:
            f = self.volume(batch["volume"])
            logits = {task: head(f) for task, head in zip(self.tasks, self.heads, strict=True)}
            return ModelOutput(logits=logits, image=f, text=None, fused=f)
        if self.mil is not None:
            out = self.mil(batch["image"], batch.get("instance_mask"))
            # the paper predicts (and is distilled) from the bag score; the default from the mean
            logits = out.bag_logits if self.mil_objective == "dsmil" else out.logits
            return ModelOutput(
                logits={self.tasks[0]: logits},
                image=out.bag_embedding,
                text=None,
                fused=out.bag_embedding,
                max_logits={self.tasks[0]: out.max_logits},
            )
        v = t = None
        if self.vision is not None:
            v = self.proj_image(self.vision(batch["image"]))
        if self.text is not None:
            ids, mask = batch[f"input_ids_{self.role}"], batch[f"attention_mask_{self.role}"]
            t = self.proj_text(self.text(ids, mask))
        aux: dict[str, Tensor] = {}
        if self.fusion is not None:
            fused, aux = self.fusion(v, t)
        else:
            fused = v if v is not None else t
        logits = {task: head(fused) for task, head in zip(self.tasks, self.heads, strict=True)}
        return ModelOutput(logits=logits, image=v, text=t, fused=fused, aux_losses=aux)


class FrozenTeacher(nn.Module):
    """A trained teacher for distillation: eval mode always (even when a parent module's
    .train() is called), no gradients, never in an optimiser (no trainable parameters)."""

    def __init__(self, model: KDModel) -> None:
        super().__init__()
        self.model = model
        for p in self.model.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)

    @torch.no_grad()
    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        return self.model(batch)
