"""Test-time perturbations (`eval.perturbations`, core.schema.PerturbationConfig): the trained
student scored on altered test inputs, after and apart from its normal test evaluation.

    captions_shuffled    every sample gets another sample's tokenised caption: one seeded random
                         cycle through the test split, so no sample keeps its own
    image_noise_<std>    x' = clip(round(x + 255 std z), 0, 255), z ~ N(0, 1) per pixel, drawn
                         per sample from (seed, its position): the same z at every std
    image_missing        the image embedding (after its projection) zeroed before the fusion,
    text_missing         resp. the text embedding: what modality dropout does to a dropped
                         modality while training; for a single-modality student its only input

Evaluation only: the split's tensors are copied, never written (the clean test predictions,
logged before, and any later use of the data stay as they were), the model's weights are not
touched, and the forward hooks of a missing modality are removed on exit. Everything is a
function of the perturbation seed and the test split, so a rerun scores the same inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from core.schema import PerturbationConfig
from pipeline.data.dataset import ROLES, DataBundle, KDDataset
from pipeline.training.evaluate import predict

if TYPE_CHECKING:
    from pipeline.tracking import RunLog

PREFIX = "test_perturbed"  # metrics test_perturbed/<name>/avg_f1, ...; predictions/perturbed/<name>.csv


@dataclass(frozen=True)
class Perturbation:
    """One perturbation: its `name` (metrics and artifact), the modality it alters, and how:
    `std` for noise, `missing` for a zeroed embedding, else the captions are shuffled."""

    name: str
    modality: str  # "image" | "text"
    std: float = 0.0
    missing: bool = False


def planned(cfg: PerturbationConfig) -> list[Perturbation]:
    """The configured perturbations, in the order they are run and reported."""
    out = [Perturbation("captions_shuffled", "text")] if cfg.captions_shuffled else []
    out += [Perturbation(f"image_noise_{std:g}", "image", std=std) for std in sorted(cfg.image_noise)]
    out += [Perturbation("image_missing", "image", missing=True)] if cfg.image_missing else []
    out += [Perturbation("text_missing", "text", missing=True)] if cfg.text_missing else []
    return out


def reads(modalities: str, modality: str) -> bool:
    """Whether a model of `modalities` (both, image, text) reads `modality`."""
    return modalities in ("both", modality)


def caption_source(n: int, seed: int) -> np.ndarray:
    """source[i]: the sample whose caption sample i gets. A random order walked as one cycle
    (each sample takes the next one's caption), so for n >= 2 no sample keeps its own; a plain
    permutation would leave about one in place."""
    order = np.random.default_rng(seed).permutation(n)
    source = np.empty(n, dtype=np.int64)
    source[order] = np.roll(order, -1)
    return source


def shuffled_captions(tensors: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """A copy of a split's tensors with every role's tokens (and masks) moved by `caption_source`."""
    src = torch.from_numpy(caption_source(len(tensors["index"]), seed))
    keys = [f"{kind}_{role}" for role in ROLES for kind in ("input_ids", "attention_mask")]
    return {**tensors, **{k: tensors[k][src] for k in keys}}


def noisy_images(images: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    """uint8 images [N, C, S, S] plus Gaussian noise of `std` (a fraction of the 0-255 range),
    clipped and rounded back to uint8. Sample i's noise comes from the generator (seed, i): the
    same whatever the batch size, and the same pattern, scaled, at every std."""
    out = torch.empty_like(images)
    for i, im in enumerate(images.numpy()):
        z = np.random.default_rng([seed, i]).standard_normal(im.shape, dtype=np.float32)
        out[i] = torch.from_numpy(np.clip(np.rint(im + 255.0 * std * z), 0, 255).astype(np.uint8))
    return out


def perturbed_split(split: KDDataset, p: Perturbation, seed: int) -> KDDataset:
    """The split with `p` applied to copies of its inputs (a missing modality leaves it as is)."""
    t = split.t
    if p.std:
        t = {**t, "image": noisy_images(t["image"], p.std, seed)}
    elif not p.missing:
        t = shuffled_captions(t, seed)
    return KDDataset(t, split.tasks)


@contextmanager
def missing(model: nn.Module, modality: str) -> Iterator[None]:
    """Within the block, `model`'s projected `modality` embedding is zeros (a forward hook on
    its projection: the model's code and weights are untouched); the hook is removed on exit."""
    proj = getattr(model, f"proj_{modality}")
    handle = proj.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
    try:
        yield
    finally:
        handle.remove()


def evaluate_perturbed(
    model: nn.Module,
    data: DataBundle,
    cfg: PerturbationConfig,
    batch_size: int,
    device: torch.device,
    log: RunLog,
    say: Callable[[str], None] = print,
) -> dict[str, float]:
    """Each applicable perturbation's test metrics (`test_perturbed/<name>/<metric>`) and
    predictions (predictions/perturbed/<name>.csv), logged to the run; the metrics returned.
    Perturbations of a modality the model does not read are skipped, and said so."""
    modalities = model.modalities
    todo = [p for p in planned(cfg) if reads(modalities, p.modality)]
    skipped = [p.name for p in planned(cfg) if p not in todo]
    if skipped:
        say(f"student: perturbations skipped ({modalities} only): {', '.join(skipped)}")
    # dev predictions of the same checkpoint: what a kind tunes on (multilabel thresholds), as
    # the clean test metrics are tuned; perturbed numbers are then comparable with them
    dev = predict(model, data.loader("dev", batch_size), device, data.kind)
    out: dict[str, float] = {}
    for p in todo:
        bundle = dataclasses.replace(
            data, splits={**data.splits, "test": perturbed_split(data.splits["test"], p, cfg.seed)}
        )
        loader = bundle.loader("test", batch_size)
        if p.missing:
            with missing(model, p.modality):
                pred = predict(model, loader, device, data.kind)
        else:
            pred = predict(model, loader, device, data.kind)
        values, _ = data.kind.metrics(pred, tune=dev)
        out.update(
            {
                f"{PREFIX}/{p.name}/{k}": v
                for k, v in values.items()
                if "/precision/" not in k and "/recall/" not in k
            }
        )
        log.text(data.kind.predictions_csv(pred), f"predictions/perturbed/{p.name}.csv")
    log.metrics(out)
    if todo:
        say(
            "student: test avg F1 under perturbations: "
            + ", ".join(f"{p.name} {out[f'{PREFIX}/{p.name}/avg_f1']:.4f}" for p in todo)
        )
    return out
