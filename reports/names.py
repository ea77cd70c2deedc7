"""How the documents and results.csv name a model's backbones: by the name the run was
configured with, and `(shrunk)` where its configuration overrode the architecture's depth or
width (the tiny profiles: `vit_tiny_patch16_224` with 2 blocks of width 64 is not the published
ViT-Tiny), so that a reader never takes a 0.26 M-parameter test model for the real one.

A run's flattened config is in its params (`student.vision.kwargs.depth`,
`teacher.text.config.n_layers`, ...); the whole model's parameter count is its `params` metric
(pipeline.training.run logs no count per backbone)."""

from __future__ import annotations

import math
import re

import pandas as pd

# keys of timm kwargs / transformers configs that set an architecture's depth or width; not
# img_size, patch_size, max_position_embeddings or global_pool, which keep its size
SIZE_KEY = re.compile(r"depth|dim|width|layers|heads|hidden|intermediate|channels")
OVERRIDES = {"vision": "kwargs", "text": "config"}  # where each part's architecture overrides are


def shrunk(run: pd.Series, role: str, part: str) -> bool:
    """Whether `role`'s (student, teacher) `part` (vision, text) had its depth or width set by the
    config: then the named architecture is not what ran. Only the profiles' test models do this,
    and they only shrink (a config that grew a model would need another word)."""
    prefix = f"params.{role}.{part}.{OVERRIDES[part]}."
    return any(
        k.startswith(prefix) and SIZE_KEY.search(k[len(prefix) :]) and _given(run[k]) for k in run.index
    )


def _given(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value != ""


def backbone(run: pd.Series, role: str, part: str) -> str:
    """The part's name as its tag gives it (`vision`, `text`), `(shrunk)` where it was."""
    name = run.get(f"tags.{part}")
    name = str(name) if _given(name) else "?"
    return f"{name} (shrunk)" if shrunk(run, role, part) else name


def shrunk_parts(run: pd.Series, role: str = "student") -> str:
    """results.csv's `shrunk` cell: `vision`, `text`, `vision+text` or empty."""
    return "+".join(p for p in ("vision", "text") if shrunk(run, role, p))


def millions(count: float) -> str:
    """A parameter count as `0.26 M` (n/a when the run did not log one)."""
    return "n/a" if count is None or math.isnan(count) else f"{count / 1e6:.2f} M"


def model(run: pd.Series, role: str) -> str:
    """`vision + text` of a run, each as `backbone` names it (one part when the other is absent)."""
    parts = [backbone(run, role, p) for p in ("vision", "text") if _given(run.get(f"tags.{p}"))]
    return " + ".join(p for p in parts if not p.startswith("none")) or "?"
