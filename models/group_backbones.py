"""The research group's backbones (shared/reference/README.md), as facts the builders use.

Their teachers: ViT-L/16 + Bio_ClinicalBERT (earlier studies), later ViT-B/16 + Bio_ClinicalBERT;
their students: {DeiT-tiny, DeiT-small, MobileViT-S, MobileViT-XXS} x {DistilBERT, MiniLM-L6-H384,
BERT-mini, BERT-tiny}. Profiles and studies name them as the real loaders do: timm names for the
vision nets, Hugging Face hub ids for the text encoders (`from_pretrained` paths).

Why this file: a text encoder is named by its hub id, and `text.pretrained: false` builds that
id's architecture with random weights from `TEXT_ARCHITECTURES` (the fields of its config.json
that shape the network), so the group's students and teachers build with no hub at all
(HF_HUB_OFFLINE=1: tests, smoke runs, the no-pretraining ablation). timm defines its vision
nets itself (`pretrained: false` is offline already); `VISION_HUB_IDS` maps each timm name to
the hub id of the same weights in the group's code, so a hub id written as a vision name gets
its timm name in the error.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from core.errors import ConfigError

_BERT = {"model_type": "bert", "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}

# hub id -> the config.json fields that shape the network (the rest are transformers' defaults)
TEXT_ARCHITECTURES: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {
        name: MappingProxyType(arch)
        for name, arch in {
            # teacher text encoder: BERT-base (cased, clinical notes), 108 M parameters
            "emilyalsentzer/Bio_ClinicalBERT": {
                **_BERT,
                "vocab_size": 28996,
                "hidden_size": 768,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
            },
            "distilbert-base-uncased": {
                "model_type": "distilbert",
                "vocab_size": 30522,
                "max_position_embeddings": 512,
                "dim": 768,
                "n_layers": 6,
                "n_heads": 12,
                "hidden_dim": 3072,
            },
            "nreimers/MiniLM-L6-H384-uncased": {
                **_BERT,
                "hidden_size": 384,
                "num_hidden_layers": 6,
                "num_attention_heads": 12,
                "intermediate_size": 1536,
            },
            "prajjwal1/bert-mini": {
                **_BERT,
                "hidden_size": 256,
                "num_hidden_layers": 4,
                "num_attention_heads": 4,
                "intermediate_size": 1024,
            },
            "prajjwal1/bert-tiny": {
                **_BERT,
                "hidden_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 512,
            },
        }.items()
    }
)

# timm name -> the hub id of the same weights in the group's code
VISION_HUB_IDS: MappingProxyType[str, str] = MappingProxyType(
    {
        "vit_large_patch16_224": "google/vit-large-patch16-224",  # timm: AugReg weights (no orig tag)
        # timm's default tag for ViT-B/16 is AugReg; Google's original weights are this tag
        "vit_base_patch16_224.orig_in21k_ft_in1k": "google/vit-base-patch16-224",
        "deit_tiny_patch16_224": "facebook/deit-tiny-patch16-224",
        "deit_small_patch16_224": "facebook/deit-small-patch16-224",
        "mobilevit_s": "apple/mobilevit-small",
        "mobilevit_xxs": "apple/mobilevit-xx-small",
    }
)


def text_architecture(name: str, key: str = "text") -> dict[str, Any]:
    """The config fields of the group's text encoder `name` (a hub id); a ConfigError that
    lists the known ids for any other name."""
    if name not in TEXT_ARCHITECTURES:
        raise ConfigError(
            f"{key}.name: no offline architecture for {name!r} "
            f"(valid: {', '.join(sorted(TEXT_ARCHITECTURES))})"
        )
    return dict(TEXT_ARCHITECTURES[name])


def timm_name_for(hub_id: str) -> str | None:
    """The timm name of the group's vision net whose hub id is `hub_id`, else None."""
    return next((timm for timm, hub in VISION_HUB_IDS.items() if hub == hub_id), None)
