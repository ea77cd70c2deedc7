"""The backbone registries and the wrappers that every source returns: the base that
models.backbones and each source defined in a file of its own (models.cnn_attention) import.
Here, apart from both, so that a source module never imports models.backbones, which imports
every source to register it (the circle this file breaks).

Both wrappers return pooled features [B, F]; `out_dim` is F. `VisionBackbone` takes the raw
uint8 batch and does resize/normalisation itself, with the mean/std it is given (the timm
pretrained config's), so teacher and student can normalise differently from one cached tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.registry import Registry

VISION: Registry[Callable[..., VisionBackbone]] = Registry("vision source")
TEXT: Registry[Callable[..., TextBackbone]] = Registry("text source")


class VisionBackbone(nn.Module):
    def __init__(self, net: nn.Module, out_dim: int, size: int, in_chans: int, mean, std) -> None:
        super().__init__()
        self.net, self.out_dim, self.size, self.in_chans = net, out_dim, size, in_chans
        self.register_buffer("mean", torch.tensor(mean[:in_chans]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std[:in_chans]).view(1, -1, 1, 1), persistent=False)

    def forward(self, image: Tensor) -> Tensor:
        x = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        if x.shape[1] != self.in_chans:  # grayscale scans into an RGB backbone, or the reverse
            x = x.expand(-1, self.in_chans, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            )
        return self.net((x - self.mean) / self.std)


class TextBackbone(nn.Module):
    """A transformers encoder; features are the attention-masked mean of the last hidden state
    (works for BERT, DistilBERT and sentence encoders alike, with or without a pooler)."""

    def __init__(self, net: nn.Module, out_dim: int) -> None:
        super().__init__()
        self.net, self.out_dim = net, out_dim

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = self.net(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
