"""The fusion extension point: a module that turns image and text features into one vector.

Add a fusion with one file in this folder and one decorator::

    @FUSIONS.register("my_fusion")
    class MyFusion(Fusion):
        def forward(self, v, t): ...

Every fusion is built as ``cls(dim=, layers=, heads=, dropout=, aux_weight=, **params)`` from
the model's FusionConfig (`build_fusion`), takes v, t of shape [B, dim] (the per-modality
projections) and returns ``(fused [B, dim], aux_losses)``: aux_losses maps a name to an
already-weighted scalar that the trainer adds to the objective and logs (empty for most
fusions). In eval mode a fusion is deterministic.

A fusion with options of its own sets ``Params``, a dataclass whose fields (with `core.schema`
checks such as `unit_interval`) are the keys of `fusion.params` in YAML and keyword arguments
of its constructor; the others take no `params` (`NoParams`), so existing fusions need nothing.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch import Tensor, nn

from core.registry import Registry
from core.schema import FusionConfig
from core.validate import _convert_dataclass

FUSIONS: Registry[type[Fusion]] = Registry("fusion")


@dataclasses.dataclass(frozen=True)
class NoParams:
    """For fusions without options of their own: `fusion.params` must be empty."""


class Fusion(nn.Module):
    Params: ClassVar[type] = NoParams

    def __init__(
        self, dim: int, layers: int = 1, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.01
    ) -> None:
        super().__init__()
        self.dim, self.layers, self.heads, self.dropout, self.aux_weight = (
            dim,
            layers,
            heads,
            dropout,
            aux_weight,
        )

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError


def build_fusion(cfg: FusionConfig, key: str) -> Fusion:
    """The fusion `cfg.name` with its options: `cfg.params` is checked against its `Params`
    (one-line ConfigError naming `<key>.params.<option>`) and passed as keyword arguments."""
    cls = FUSIONS.get(cfg.name, f"{key}.name")
    params = _convert_dataclass(cls.Params, dict(cfg.params), f"{key}.params", {}, "")
    options = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    return cls(
        dim=cfg.dim,
        layers=cfg.layers,
        heads=cfg.heads,
        dropout=cfg.dropout,
        aux_weight=cfg.aux_weight,
        **options,
    )
