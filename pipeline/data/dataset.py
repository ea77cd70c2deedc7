"""The data stage: records -> decoded images + two tokenisations -> torch Datasets and loaders.

Batch contract (every key always present)::

    image                   uint8  [B, C, S, S]  raw pixels; the model normalises per backbone
    input_ids_teacher       int64  [B, Lt]       attention_mask_teacher  int64 [B, Lt]
    input_ids_student       int64  [B, Ls]       attention_mask_student  int64 [B, Ls]
                            (a role whose model reads no text: one padding column, mask 0)
    labels                  dict task -> the task kind's target: int64 [B] class index in
                            `label_maps[task]` (multiclass), float [B, K] 0/1 (multilabel)
    index                   int64  [B]           position in the split (contrastive memory banks)

Multiple-instance datasets (pipeline.data.mil): image is uint8 [B, N_max, C, S, S], one bag per
sample padded to the split's largest bag, plus instance_mask bool [B, N_max] (True = real).
BraTS datasets read by a 3-D model (models/volume3d.py) also carry `volume` uint8 [B, C, X, Y, Z],
each patient's whole volume (pipeline.data.volumes); without a DSMIL model in the run there is
no `image` (no bag of slices is decoded), so each model reads the input it needs.

Token tensors are trimmed to the longest sequence in the batch. Everything is held in memory
as tensors, so a batch is an indexing operation (`__getitems__`), not B Python calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from core.schema import DatasetConfig, PreprocessConfig, SplitConfig, TokenizerConfig
from pipeline.data.digest import split_digest
from pipeline.data.images import ImageSet
from pipeline.data.medpix import SPLITS, Sample, drop_unseen, label_maps, read_dataset
from pipeline.data.splits import apply_split
from tasks import TASK_KINDS, TaskKind

if TYPE_CHECKING:  # transformers (~1 s) is imported only when a role reads text
    from transformers import PreTrainedTokenizerBase

ROLES = ("teacher", "student")


class KDDataset(Dataset):
    def __init__(
        self, tensors: dict[str, torch.Tensor], tasks: tuple[str, ...], augment: str = "none"
    ) -> None:
        self.t = tensors
        self.tasks = tasks
        self.augment = augment
        self._aug = None
        if "image" in tensors:  # absent when only 3-D models read the data (volumes flip below)
            size = tensors["image"].shape[-1]
            self._aug = {
                "none": None,
                "flip": v2.RandomHorizontalFlip(),
                "flip_crop": v2.Compose(
                    [v2.RandomHorizontalFlip(), v2.RandomResizedCrop(size, scale=(0.8, 1.0), antialias=True)]
                ),
            }[augment]

    def __len__(self) -> int:
        return len(self.t["index"])

    def __getitems__(self, idx: list[int]) -> dict:
        i = torch.as_tensor(idx, dtype=torch.long)
        batch = {k: v[i] for k, v in self.t.items() if k != "labels"}
        batch["labels"] = {task: self.t["labels"][task][i] for task in self.tasks}
        if self._aug is not None:
            batch["image"] = torch.stack([self._aug(im) for im in batch["image"]])
        if "volume" in batch and self.augment != "none":  # train.augment: flip (schema checks it)
            from pipeline.data.volumes import random_flips

            batch["volume"] = random_flips(batch["volume"])
        return batch

    def __getitem__(self, i: int) -> dict:
        return trim(self.__getitems__([i]), squeeze=True)


def trim(batch: dict, squeeze: bool = False) -> dict:
    """Cut token tensors to the longest sequence in the batch, and bags to the largest bag
    (collate_fn for __getitems__)."""
    out = dict(batch)
    if "instance_mask" in batch:  # bags: real instances come first; drop all-padding columns
        n = max(int(batch["instance_mask"].sum(1).max()), 1)
        out["image"], out["instance_mask"] = batch["image"][:, :n], batch["instance_mask"][:, :n]
    for role in ROLES:
        mask = batch[f"attention_mask_{role}"]
        n = max(int(mask.sum(1).max()), 1)
        out[f"input_ids_{role}"] = batch[f"input_ids_{role}"][:, :n]
        out[f"attention_mask_{role}"] = mask[:, :n]
    if squeeze:
        out = {k: ({t: x[0] for t, x in v.items()} if isinstance(v, dict) else v[0]) for k, v in out.items()}
    return out


@dataclass(frozen=True)
class DataBundle:
    """What later stages need from the data: datasets per split, label maps, tokenizers."""

    name: str
    tasks: tuple[str, ...]
    label_maps: Mapping[str, tuple[str, ...]]  # task -> class names (or label names)
    kind: TaskKind
    splits: Mapping[str, KDDataset]
    tokenizers: Mapping[str, PreTrainedTokenizerBase | None]  # None: that role reads no text
    image_size: int
    channels: int
    # split -> each sample's patient (case) id, in split order: what predictions' `index` points
    # to, so runs of different models on the same split can be joined by patient
    case_ids: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    digests: Mapping[str, str] = field(default_factory=dict)  # split -> pipeline.data.digest
    # (mean, std) every vision backbone normalises with (preprocess.normalize: given), so
    # teacher and student see the same tensor; None: each backbone's own
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def facts(self) -> dict[str, float]:
        """Facts of the train split worth logging: for bags (or whole volumes), bags per class of
        the (single) task, and instances per bag (median, min, max) for bags of slices; nothing
        for one-image samples."""
        t = self.splits["train"].t
        if "instance_mask" not in t and "volume" not in t:
            return {}
        (task,) = self.tasks
        out = {
            f"data/train_bags/{c}": float((t["labels"][task] == i).sum())
            for i, c in enumerate(self.label_maps[task])
        }
        if "instance_mask" not in t:
            return out
        sizes = t["instance_mask"].sum(1).float()
        out.update(
            {
                "data/instances_median": float(sizes.median()),
                "data/instances_min": float(sizes.min()),
                "data/instances_max": float(sizes.max()),
            }
        )
        return out

    def num_classes(self) -> dict[str, int]:
        return {t: len(c) for t, c in self.label_maps.items()}

    def loader(
        self,
        split: str,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        plain: bool = False,
        weighted: bool = False,
    ) -> DataLoader:
        """Batches of a split; `plain`: without the train split's augmentation (for evaluation);
        `weighted`: drawn with replacement, inverse to class frequency (one multiclass task)."""
        g = torch.Generator().manual_seed(seed)
        ds = self.splits[split]
        if plain and ds.augment != "none":
            ds = KDDataset(ds.t, ds.tasks)
        sampler = None
        if weighted:
            from pipeline.data.sampler import weighted_sampler

            (task,) = self.tasks
            sampler, shuffle = weighted_sampler(ds.t["labels"][task], seed), False
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            generator=g if sampler is None else None,
            collate_fn=trim,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
        )


def _tensors(
    samples: list[Sample],
    images: Any,
    tasks: tuple[str, ...],
    kind: TaskKind,
    toks: Mapping[str, PreTrainedTokenizerBase | None],
    tok_cfgs: Mapping[str, TokenizerConfig],
    volumes: Any = None,
) -> dict[str, torch.Tensor]:
    texts = [s.text for s in samples]
    out = {"index": torch.arange(len(samples))}
    if images is not None:  # None: only 3-D models read this data
        out["image"] = torch.from_numpy(images.array)
    if volumes is not None:  # whole volumes, for 3-D models
        out["volume"] = torch.from_numpy(volumes.array)
    if hasattr(images, "mask"):  # bags: which instances are real (the rest is padding)
        out["instance_mask"] = torch.from_numpy(images.mask)
    for role in ROLES:
        if toks[role] is None:
            ids = mask = np.zeros((len(samples), 1), dtype=np.int64)
        else:
            from pipeline.data.text import encode  # only a role that reads text needs transformers

            ids, mask = encode(toks[role], texts, tok_cfgs[role].max_length)
        out[f"input_ids_{role}"], out[f"attention_mask_{role}"] = (
            torch.from_numpy(ids),
            torch.from_numpy(mask),
        )
    out["labels"] = {t: kind.encode_labels(t, [s.labels[t] for s in samples]) for t in tasks}
    return out


def read_splits(cfg: DatasetConfig) -> tuple[dict[str, list[Sample]], dict[str, tuple[str, ...]] | None]:
    """The dataset's train/dev/test samples in its on-disk format (medpix and csv: one reader), checked (bad data: one
    line); and its label maps when the format fixes them (ChestX-ray14's 14 labels), else None."""
    if cfg.format == "chestxray":  # NIH layout: one multilabel task, no text
        from pipeline.data.chestxray import samples

        return samples(cfg)
    if cfg.is_bags:  # one sample per bag (patient): BraTS volumes or a bag CSV
        from pipeline.data.mil import samples as bag_samples

        return bag_samples(cfg)
    return read_dataset(cfg), None


def load_data(
    cfg: DatasetConfig,
    image_size: int,
    tokenizers: Mapping[str, TokenizerConfig | None],
    augment: str = "none",
    split: SplitConfig = SplitConfig(),
    seed: int = 0,
    volume: tuple[tuple[int, ...], str] | None = None,
    read_images: bool = True,
    preprocess: PreprocessConfig = PreprocessConfig(),
) -> DataBundle:
    """Read, validate, decode and tokenise train/dev/test, with train/dev formed as `split` asks
    (a cross-validation fold or the refit; folds depend on `seed`). A role whose tokenizer is
    None reads no text: no tokenizer is built for it. `volume` (shape, fit): also decode each
    patient's whole volume (BraTS, for 3-D models); `read_images=False`: decode no images or
    bags (only 3-D models read the data). The split does not depend on either. `preprocess`:
    colour mode, resize mode, normalisation and text length (core.schema.PreprocessConfig).
    Caches are written only at the end, after every check and every decode succeeded, so bad
    data writes nothing."""
    tasks = tuple(cfg.tasks)
    channels = preprocess.channels_override or cfg.channels
    if preprocess.text_max_length is not None:  # one length for both roles (the group's 256)
        tokenizers = {
            r: t if t is None else replace(t, max_length=preprocess.text_max_length)
            for r, t in tokenizers.items()
        }
    splits, maps = read_splits(cfg)
    splits = apply_split(split, cfg, splits, seed)
    if maps is None:  # MedPix: classes are what train holds (after the fold is formed)
        maps = label_maps(splits["train"], tasks)
        splits = drop_unseen(cfg, splits, maps)
    kind = TASK_KINDS.get(cfg.kind, "dataset.kind")(maps)
    if not read_images:
        images = dict.fromkeys(SPLITS)
    elif cfg.is_bags:
        from pipeline.data.mil import PaddedBags

        images = {n: PaddedBags(cfg, splits[n], image_size) for n in SPLITS}
    else:
        images = {
            n: ImageSet([s.image_path for s in splits[n]], image_size, channels, preprocess.resize)
            for n in SPLITS
        }
    train_texts = [s.text for s in splits["train"]]
    # Hub/folder tokenizers first: a bad name must fail before a WordPiece cache is written.
    reading = [r for r in ROLES if tokenizers[r] is not None]
    if reading:  # image-only models never import transformers
        from pipeline.data.text import load_tokenizer
    order = sorted(reading, key=lambda r: tokenizers[r].name == "wordpiece")
    toks: dict[str, PreTrainedTokenizerBase | None] = dict.fromkeys(ROLES)
    toks.update({r: load_tokenizer(tokenizers[r], train_texts, key=f"{r}.text.tokenizer") for r in order})
    volumes = dict.fromkeys(SPLITS)
    if volume is not None:
        from pipeline.data.volumes import VolumeArray

        volumes = {n: VolumeArray(cfg, splits[n], *volume) for n in SPLITS}
    for im in [*images.values(), *volumes.values()]:
        if im is not None:
            im.save()
    datasets = {
        n: KDDataset(
            _tensors(splits[n], images[n], tasks, kind, toks, tokenizers, volumes[n]),
            tasks,
            augment if n == "train" else "none",
        )
        for n in SPLITS
    }
    ids = {n: tuple(s.case_id for s in splits[n]) for n in SPLITS}
    digests = {n: split_digest(cfg.root, splits[n]) for n in SPLITS}
    norm = (preprocess.mean, preprocess.std) if preprocess.normalize == "given" else None
    return DataBundle(cfg.name, tasks, maps, kind, datasets, toks, image_size, channels, ids, digests, norm)
