"""3-D models on whole MRI volumes (issue 17): MONAI networks as encoders of a KDModel.

A builder in `MODELS3D` turns a `VolumeConfig` (`teacher.volume` / `student.volume`) and the
number of input channels (the dataset's modalities) into a `Volume3D`: uint8 volumes
[B, C, X, Y, Z] (pipeline.data.volumes: 0..255, background 0) -> pooled features [B, out_dim].
KDModel puts the task kind's head on those features, so KD losses see `logits` per task and
`fused` (the pooled features) as for every other model.

- `resnet3d`: `monai.networks.nets.resnet{depth}` (10, 18, 34, 50, 101, 152, 200) with
  spatial_dims=3, `widen_factor` (channels of every stage times it) and `conv1_t_stride` (the
  stem's stride), and no classifier (`feed_forward=False`: the global-average-pooled features).
- `swin3d`: the Swin transformer encoder of `monai.networks.nets.SwinUNETR` (its `swinViT`;
  the U-Net decoder is dropped), its deepest stage (layer-normalised, as SwinUNETR feeds it to
  the decoder) global-average-pooled: 16 * feature_size features. The volume is zero-padded,
  centred, to a multiple of patch_size * 2^4 per side, so each of the four patch-merging
  stages halves a whole grid (SwinUNETR itself demands patch_size^5, the same at its
  default patch 2); window partitions pad what remains themselves.

Weights: from scratch. MONAI can download Med3D (ResNet) or self-supervised Swin weights
from the internet, but this project's machines are offline and the package index carries no
3-D weights, so `pretrained` is not offered. MONAI is imported when a model is built, never
when this registry is: validating a configuration stays free of torch-heavy imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from core.errors import ConfigError
from core.registry import Registry
from core.schema import VolumeConfig

RESNET_DEPTHS = (10, 18, 34, 50, 101, 152, 200)


class Volume3D(nn.Module):
    """A 3-D encoder: uint8 [B, C, X, Y, Z] -> [B, out_dim]. `pad_multiple`: each spatial side
    is zero-padded (centred) up to a multiple of it first; 1 = no padding."""

    def __init__(self, encode: nn.Module, out_dim: int, pad_multiple: int = 1) -> None:
        super().__init__()
        self.encode = encode
        self.out_dim = int(out_dim)
        self.pad_multiple = int(pad_multiple)

    def forward(self, volume: Tensor) -> Tensor:
        x = volume.float() / 255.0  # background stays 0, the value padding adds
        m = self.pad_multiple
        if m > 1:
            pad: list[int] = []
            for side in reversed(x.shape[2:]):  # F.pad lists the last axis first
                extra = -side % m
                pad += [extra // 2, extra - extra // 2]
            if any(pad):
                x = nn.functional.pad(x, pad)
        return self.encode(x)


Builder = Callable[..., Volume3D]  # (cfg, in_channels, key) -> the model
MODELS3D: Registry[Builder] = Registry("3-D model")


def _fail(key: str, e: Exception) -> ConfigError:
    return ConfigError(f"{key}: MONAI cannot build it ({str(e).splitlines()[0]})")


@MODELS3D.register("resnet3d")
def resnet3d(cfg: VolumeConfig, in_channels: int, key: str = "volume") -> Volume3D:
    """MONAI's 3-D ResNet of `cfg.depth` layers, pooled features (no classifier)."""
    if cfg.depth not in RESNET_DEPTHS:
        raise ConfigError(
            f"{key}.depth: expected one of {', '.join(map(str, RESNET_DEPTHS))} (MONAI's 3-D ResNets), got {cfg.depth}"
        )
    from monai.networks import nets

    kwargs: dict[str, Any] = {
        "widen_factor": cfg.widen_factor,
        "conv1_t_stride": cfg.conv1_t_stride,
        **dict(cfg.kwargs),
        "spatial_dims": 3,
        "n_input_channels": in_channels,
    }
    try:
        net = getattr(nets, f"resnet{cfg.depth}")(pretrained=False, feed_forward=False, **kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        raise _fail(f"{key}.kwargs", e) from None
    # the pooled width: the last stage's planes times its block's expansion (4 for bottlenecks)
    return Volume3D(net, net.in_planes)


class _SwinPooled(nn.Module):
    """SwinUNETR's encoder, deepest stage global-average-pooled."""

    def __init__(self, swin_vit: nn.Module) -> None:
        super().__init__()
        self.swinViT = swin_vit

    def forward(self, x: Tensor) -> Tensor:
        deepest = self.swinViT(x, normalize=True)[-1]  # [B, 16 * feature_size, x/32, y/32, z/32]
        return deepest.flatten(2).mean(-1)


@MODELS3D.register("swin3d")
def swin3d(cfg: VolumeConfig, in_channels: int, key: str = "volume") -> Volume3D:
    """The Swin encoder of MONAI's SwinUNETR (`feature_size`, `depths`, `num_heads`,
    `window_size`, `patch_size`; `use_v2`: SwinUNETR-v2, a residual conv block before each
    stage), its deepest stage pooled."""
    if cfg.feature_size % 12:
        raise ConfigError(
            f"{key}.feature_size: expected a multiple of 12 (SwinUNETR's rule), got {cfg.feature_size}"
        )
    if len(cfg.depths) != 4 or len(cfg.num_heads) != 4:
        raise ConfigError(
            f"{key}.depths, {key}.num_heads: expected four values each (SwinUNETR's four stages), "
            f"got {list(cfg.depths)} and {list(cfg.num_heads)}"
        )
    for i, heads in enumerate(cfg.num_heads):
        if heads < 1 or (cfg.feature_size * 2**i) % heads:
            raise ConfigError(
                f"{key}.num_heads[{i}]: expected a divisor of stage {i}'s width {cfg.feature_size * 2**i}, got {heads}"
            )
    from monai.networks.nets import SwinUNETR

    try:
        net = SwinUNETR(
            in_channels=in_channels,
            out_channels=2,  # the decoder's; it is dropped below
            feature_size=cfg.feature_size,
            depths=tuple(cfg.depths),
            num_heads=tuple(cfg.num_heads),
            window_size=cfg.window_size,
            patch_size=cfg.patch_size,
            use_v2=cfg.use_v2,
            spatial_dims=3,
            **dict(cfg.kwargs),
        )
    except (TypeError, ValueError, RuntimeError) as e:
        raise _fail(f"{key}.kwargs", e) from None
    return Volume3D(_SwinPooled(net.swinViT), 16 * cfg.feature_size, cfg.patch_size * 2**4)


def build_volume(cfg: VolumeConfig, in_channels: int, key: str = "volume") -> Volume3D:
    """The registered 3-D model `cfg.name`; `key` (e.g. "student.volume") names it in errors."""
    build = MODELS3D.get(cfg.name, f"{key}.name")
    return build(cfg, in_channels, key)
