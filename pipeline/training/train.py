"""The training loop, shared by the teacher (labels only) and the student (distillation).

AdamW over the model's and the loss's trainable parameters (feature-term projections belong
to the loss, which may keep them fixed: `loss.train_params`), at a constant rate or on a cosine
schedule (`train.schedule`); gradient clipping; early stopping on a dev F1 (`monitor`, default the average macro-F1) with patience; the best
epoch's weights are restored before returning. A non-finite objective raises `NonFiniteLoss`
naming the terms, so a collapse shows which term blew up.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from core.schema import TrainConfig
from losses.base import DistillLoss
from pipeline.data.dataset import DataBundle
from pipeline.training.evaluate import autocast, predict, to_device


class NonFiniteLoss(RuntimeError):
    """The training objective became NaN or infinite."""


@dataclass
class FitResult:
    best_epoch: int = 0
    best_dev_f1: float = float("-inf")
    epochs_run: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from core.errors import ConfigError

        raise ConfigError(
            "train.device: cuda was asked for but no CUDA device is available (use auto or cpu)"
        )
    return torch.device(name)


def train_epoch(
    model: nn.Module,
    loss_fn: DistillLoss,
    opt: torch.optim.Optimizer,
    batches: Iterable[dict],
    device: torch.device,
    params: list[torch.nn.Parameter],
    grad_clip: float = 0.0,
    teacher: nn.Module | None = None,
    epoch: int = 1,
    sched: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> tuple[dict[str, float], int]:
    """One pass over `batches` (a DataLoader, or pre-collated batches in the input-pipeline
    benchmark): (sum over samples of each loss term and of the total, number of samples)."""
    model.train()
    loss_fn.train()
    use_teacher = teacher is not None and loss_fn.uses_teacher
    sums: dict[str, float] = defaultdict(float)
    n = 0
    for batch in batches:
        batch = to_device(batch, device)
        with autocast(device):
            out = model(batch)
            t_out = teacher(batch) if use_teacher else None
        terms = loss_fn(out, t_out, batch["labels"], batch["index"])
        terms.update({f"aux/{k}": v for k, v in out.aux_losses.items()})
        total = sum(terms.values())
        if not torch.isfinite(total):
            shown = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
            raise NonFiniteLoss(f"non-finite loss at epoch {epoch} ({shown})")
        opt.zero_grad(set_to_none=True)
        total.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        if sched is not None:
            sched.step()
        b = len(batch["index"])
        n += b
        for k, v in terms.items():
            sums[k] += float(v.detach()) * b
        sums["loss"] += float(total.detach()) * b
    return sums, n


def optimizer(
    model: nn.Module, loss_fn: DistillLoss, cfg: TrainConfig, lr: float | None = None
) -> tuple[list[nn.Parameter], torch.optim.Optimizer]:
    """AdamW over the trainable parameters of the model and of the loss (its projections, unless
    the loss keeps them fixed: `DistillLoss.trained_parameters`, `loss.train_params`), at `lr`
    (the stage's rate, `TrainConfig.lr_for`; None: `cfg.lr`)."""
    trained = getattr(loss_fn, "trained_parameters", loss_fn.parameters)  # a plain module: all
    params = [p for p in itertools.chain(model.parameters(), trained()) if p.requires_grad]
    rate = cfg.lr if lr is None else lr
    return params, torch.optim.AdamW(params, lr=rate, weight_decay=cfg.weight_decay)


def schedule(
    opt: torch.optim.Optimizer, kind: str, steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The rate over a stage's `steps` optimiser steps. `constant`: None (AdamW's rate throughout).
    `cosine` (Loshchilov & Hutter, SGDR, ICLR 2017, without restarts or warm-up): the step-k
    update uses lr_k = lr * (1 + cos(pi * k / steps)) / 2, k = 0 .. steps - 1, so the first step
    is at the stage's rate and the rate reaches 0 after the last; steps = epochs x batches per
    epoch, so a stage stopped early by patience ends above 0. Why: fine-tuning pretrained
    backbones at a constant rate for a few epochs leaves the dev metric jumping between epochs;
    a decaying rate settles the last ones."""
    if kind == "constant":
        return None
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k, steps) / steps))
    )


def fit(
    model: nn.Module,
    loss_fn: DistillLoss,
    data: DataBundle,
    cfg: TrainConfig,
    epochs: int,
    seed: int,
    device: torch.device,
    teacher: nn.Module | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    lr: float | None = None,
) -> FitResult:
    """Train `model` for up to `epochs` at `lr` (the stage's rate; None: `cfg.lr`);
    `on_epoch(epoch, record)` receives the epoch's mean train terms (``train/<term>``,
    ``train/loss``) and dev metrics (``dev/<metric>``)."""
    model.to(device)
    loss_fn.to(device)
    params, opt = optimizer(model, loss_fn, cfg, lr)
    dev_loader = data.loader("dev", cfg.eval_batch_size, num_workers=cfg.num_workers)
    result, best_state, bad_epochs = FitResult(), None, 0
    per_epoch = -(-len(data.splits["train"]) // cfg.batch_size)  # DataLoader keeps the last batch
    sched = schedule(opt, cfg.schedule, max(1, epochs * per_epoch))
    for epoch in range(1, epochs + 1):
        loader = data.loader(
            "train",
            cfg.batch_size,
            shuffle=True,
            seed=seed * 1000 + epoch,
            num_workers=cfg.num_workers,
            weighted=cfg.sampler == "weighted",
        )
        loss_fn.start_epoch(epoch, epochs)
        sums, n = train_epoch(
            model, loss_fn, opt, loader, device, params, cfg.grad_clip, teacher, epoch, sched
        )
        dev_pred = predict(model, dev_loader, device, data.kind)
        dev, _ = data.kind.metrics(dev_pred)
        record = {f"train/{k}": v / n for k, v in sums.items()}
        record.update(
            {f"dev/{k}": v for k, v in dev.items() if "/precision/" not in k and "/recall/" not in k}
        )
        record["dev/collapsed"] = float(data.kind.collapsed(dev_pred))  # one class for every sample
        result.history.append(record)
        result.epochs_run = epoch
        if on_epoch:
            on_epoch(epoch, record)
        if dev[cfg.monitor] > result.best_dev_f1:
            result.best_dev_f1, result.best_epoch, bad_epochs = dev[cfg.monitor], epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
