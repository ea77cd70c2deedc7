"""Parameter counts and sizes of any module: a leaf that models.model, models.cnn_attention and
the training stage share (in models.model, cnn_attention had to import back from the module that
imports it through the backbones)."""

from __future__ import annotations

from torch import nn


def parameter_count(model: nn.Module) -> int:
    """Every parameter's element count, trainable or frozen (a teacher's count its own)."""
    return sum(p.numel() for p in model.parameters())


def size_mb(model: nn.Module) -> float:
    """Bytes of parameters and buffers, in MiB (what a saved state_dict weighs)."""
    n = sum(p.numel() * p.element_size() for p in model.parameters())
    n += sum(b.numel() * b.element_size() for b in model.buffers())
    return n / 2**20


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Element counts per top-level part (`vision`, `text`, `proj_image`, `fusion`, `heads`...),
    each parameter counted once (a backbone a MIL head wraps counts under the part that owns it
    first), so the parts sum to `parameter_count`."""
    out: dict[str, int] = {}
    for name, p in model.named_parameters():
        part = name.split(".")[0]
        out[part] = out.get(part, 0) + p.numel()
    return out
