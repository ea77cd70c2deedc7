"""Teacher outputs computed once per teacher and train split, shared by every student of a sweep
(on any worker or node: local cache first, the teacher run's artifacts otherwise).

A KD student runs its frozen teacher forward on every batch of every epoch, and every student of
a sweep does it again on the same samples. When the student's training input is the same on
every epoch (no train augmentation), the teacher's outputs for a sample are too: they are
computed once (`train.teacher_cache`, on by default), stored under KDSWEEP_CACHE, and served by
sample index (`CachedTeacher`). With random train views (`train.augment` flip / flip_crop) the
teacher must see the student's view, so it runs online; each student run records which
(`teacher_outputs`: `cached` or `online (<reason>)`).

The key: the teacher's MLflow run (its weights and, through its hash, its model, data config and
preprocessing), the train split's data digest (files, labels, text, membership), and the tensor
shapes the teacher reads; a retrained teacher, a changed image or a changed preprocessing key
each give another key. Files are float32 `.npy` (the precision the losses compute in), read
through memory maps: a batch reads its rows only, so a large split never needs all of them in
RAM. Written to a temporary folder and renamed, so concurrent students never read half a cache;
the first builder also logs it beside the teacher (artifacts `teacher_outputs/<key>/`), where a
student on another machine, whose local cache lacks it, downloads it instead of computing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from models.outputs import ModelOutput
from pipeline import tracking

FIELDS = ("image", "text", "fused")
ARTIFACTS = "teacher_outputs"  # the teacher run's artifact folder of its caches


def mode(augment: str, enabled: bool, teacher_run: str) -> tuple[bool, str]:
    """(use the cache, what the run records)."""
    if not enabled:
        return False, "online (train.teacher_cache is off)"
    if augment != "none":
        return False, f"online (train.augment={augment}: the teacher must see each random view)"
    if not teacher_run or not tracking.enabled():  # --no-track: every teacher is "untracked"
        return False, "online (no teacher run to key a cache by)"
    return True, "cached"


def key(teacher_run: str, digest: str, shapes: dict[str, tuple[int, ...]]) -> str:
    text = json.dumps({"teacher_run": teacher_run, "train_digest": digest, "shapes": shapes}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _root() -> Path:
    from pipeline.data.images import cache_dir

    return cache_dir() / "teacher-outputs"


def _store(folder: Path, outs: list[ModelOutput]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name in FIELDS:
        parts = [getattr(o, name) for o in outs]
        if all(p is not None for p in parts):
            arrays[name] = torch.cat(parts).float().numpy()
    for kind in ("logits", "max_logits"):
        for task in outs[0].__dict__[kind]:
            arrays[f"{kind}.{task}"] = torch.cat([o.__dict__[kind][task] for o in outs]).float().numpy()
    for name, a in arrays.items():
        np.save(folder / f"{name}.npy", a)


@torch.no_grad()
def build(teacher: nn.Module, loader, device: torch.device, folder: Path) -> None:
    """The teacher's outputs for every sample of `loader` (in split order, unshuffled) in `folder`."""
    from pipeline.training.evaluate import to_device

    outs, seen = [], 0
    for batch in loader:
        batch = to_device(batch, device)
        assert int(batch["index"][0]) == seen, "the cache is built from the split in order"
        o = teacher(batch)
        outs.append(ModelOutput({t: v.cpu() for t, v in o.logits.items()},
                                None if o.image is None else o.image.cpu(),
                                None if o.text is None else o.text.cpu(),
                                o.fused.cpu(),
                                max_logits={t: v.cpu() for t, v in o.max_logits.items()}))  # fmt: skip
        seen += len(batch["index"])
    folder.mkdir(parents=True, exist_ok=True)
    _store(folder, outs)


class CachedTeacher(nn.Module):
    """The frozen teacher's outputs read from the cache by `batch["index"]` (the sample's
    position in the train split): what `FrozenTeacher(batch)` returns, without running it."""

    def __init__(self, folder: Path, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.maps = {p.stem: np.load(p, mmap_mode="r") for p in sorted(folder.glob("*.npy"))}

    def train(self, mode: bool = True) -> CachedTeacher:
        return super().train(False)

    def _rows(self, name: str, idx: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.maps[name][idx])).to(self.device)

    def forward(self, batch: dict) -> ModelOutput:
        idx = batch["index"].cpu().numpy()
        by = {k: {n.split(".", 1)[1]: self._rows(n, idx) for n in self.maps if n.startswith(f"{k}.")}
              for k in ("logits", "max_logits")}  # fmt: skip
        get = lambda n: self._rows(n, idx) if n in self.maps else None  # noqa: E731
        return ModelOutput(by["logits"], get("image"), get("text"), get("fused"), max_logits=by["max_logits"])


def cached_teacher(
    frozen: nn.Module, data, teacher_run: str, batch_size: int, device: torch.device
) -> CachedTeacher:
    """The cache of this teacher run and train split, built first when it does not exist (by
    whichever student gets there first; the others wait on nothing: a concurrent builder's
    finished folder simply replaces nothing, since both hold the same outputs)."""
    ds = data.splits["train"]
    shapes = {k: tuple(v.shape) for k, v in sorted(ds.t.items()) if isinstance(v, Tensor)}
    k = key(teacher_run, data.digests.get("train", ""), shapes)
    folder = _root() / k
    if not (folder / "done").exists():
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=_mkdir(_root())))
        try:
            # another node's student may have published it beside the teacher: read it there
            got = tracking.download_folder(teacher_run, f"{ARTIFACTS}/{k}", tmp / "dl")
            if got is not None and (got / "done").exists():
                tmp_out = got
            else:
                build(frozen, data.loader("train", batch_size, plain=True), device, tmp / "out")
                (tmp / "out" / "done").write_text(teacher_run)
                tmp_out = tmp / "out"
                publish(teacher_run, k, tmp_out)
            try:
                os.rename(tmp_out, folder)
            except OSError:  # another student finished it first: the same outputs
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return CachedTeacher(folder, device)


def publish(teacher_run: str, k: str, folder: Path) -> None:
    """The cache beside its teacher (artifacts `teacher_outputs/<key>/`), for students on other
    machines; best effort: a store that refuses (read-only, offline) leaves the local copy."""
    try:
        tracking.log_files(teacher_run, sorted(folder.iterdir()), f"{ARTIFACTS}/{k}")
    except Exception:
        pass


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p
