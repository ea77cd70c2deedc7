"""The typed, immutable configuration of one experiment.

Each section mirrors a part that can be swapped (dataset, backbones, fusion, loss, training);
stages receive only the section they need. Field metadata:
  - ``check``: a (predicate, "expected ...") pair validated by `pipeline.config.loader`;
  - ``hash=False``: the field does not change results and is left out of `config_hash`;
  - ``param="if_set"``: logged as an MLflow param only when it differs from its default (a
    newer option that leaves the params of existing runs as they were).
Cross-field rules live in each class's ``validate`` and raise `ValueError(key, message)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


def _check(pred, expected: str, hash: bool | str = True, **kw) -> Any:
    return field(metadata={"check": (pred, expected), "hash": hash}, **kw)


def positive(**kw) -> Any:
    return _check(lambda v: v > 0, "a value > 0", **kw)


def non_negative(**kw) -> Any:
    return _check(lambda v: v >= 0, "a value >= 0", **kw)


def unit_interval(**kw) -> Any:
    return _check(lambda v: 0 <= v <= 1, "a value in [0, 1]", **kw)


def optional_positive() -> Any:
    """None (unset) or a value > 0; hashed only when set (see `hash_if_set`)."""
    return _check(lambda v: v is None or v > 0, "a value > 0", hash="if_set", default=None)


def no_hash(**kw) -> Any:
    return field(metadata={"hash": False}, **kw)


def hash_if_set(**kw) -> Any:
    """Hashed only when it differs from its default: adding such a section leaves the hashes of
    existing configurations (and so their teachers, resume and reuse) unchanged."""
    return field(metadata={"hash": "if_set"}, **kw)


@dataclass(frozen=True, kw_only=True)
class TextSource:
    """Where a sample's text comes from: description fields, plus case fields joined by U_id."""

    fields: tuple[str, ...] = ("Description.Caption",)
    case_fields: tuple[str, ...] = ()  # e.g. ("Case.History", "Case.Findings") from data_{split}.jsonl
    separator: str = " "
    # what a sample whose text fields are all empty reads instead (Wound-1-0: "No description
    # available", as the group's loader does); "" keeps it empty
    empty: str = hash_if_set(default="")


@dataclass(frozen=True, kw_only=True)
class TableOptions:
    """`format: csv`: a folder of images and CSV tables, one row per image (the group's
    Wound-1-0 layout). `files` names each split's table (`{split}` <- the `splits` value);
    `table` is the whole table that `python -m pipeline.data split` splits; an image is
    `<root>/<images>/<value of the first column of image_columns that the file has>`, the value
    carrying its extension. `id_column` names a patient/case column when there is one; without
    it every image is its own case. Columns of labels and text: `tasks` and `text.fields`."""

    files: str = "metadata_{split}.csv"
    table: str = "metadata.csv"
    images: str = "images"
    image_columns: tuple[str, ...] = ("img_path", "file_path")  # older files say file_path
    id_column: str | None = None


@dataclass(frozen=True, kw_only=True)
class BagOptions:
    """Multiple-instance datasets (`format: brats` or `bags`): a bag is one patient.

    brats: the BraTS 2019 layout (HGG/LGG/<subject>/<subject>_<modality>.nii.gz); instances are
    axial slices with `modalities` as channels, normalised per volume, slices with less than
    `min_brain_fraction` tissue dropped, then every `slice_step`-th, then at most `max_slices`
    (evenly spaced). bags: `csv` (bag_id,label,instance_path; PNG instances) under the root.
    Neither format publishes a test or dev split: both are stratified, patient-level hold-outs
    (`test_fraction` of all bags, then `dev_fraction` of the rest), fixed by `holdout_seed`.
    """

    modalities: tuple[str, ...] = ("flair", "t1ce", "t2")
    slice_step: int = positive(default=1)
    max_slices: int | None = None
    min_brain_fraction: float = unit_interval(default=0.01)
    csv: str = "bags.csv"
    test_fraction: float = unit_interval(default=0.2)
    dev_fraction: float = unit_interval(default=0.2)
    holdout_seed: int = non_negative(default=0)


@dataclass(frozen=True, kw_only=True)
class DatasetConfig:
    """A dataset in the MedPix-2.0 on-disk format (see `pipeline.data.medpix`)."""

    name: str
    root: str
    tasks: Mapping[str, str]  # task name -> label field (dotted path in descriptions_{split}.jsonl)
    text: TextSource = TextSource()
    splits: Mapping[str, str] = field(
        default_factory=lambda: {"train": "train", "dev": "dev", "test": "test"}
    )
    case_id: str = "U_id"
    image_field: str = "image"
    image_ext: str = ".png"
    channels: Literal[1, 3] = 1  # images are converted to L (1) or RGB (3) once, when decoded
    kind: str = "multiclass"  # the task kind (tasks/): multiclass | multilabel
    # on-disk layout: MedPix-2.0 (pipeline.data.medpix) or NIH ChestX-ray14 (pipeline.data.chestxray)
    # or a folder of images with CSV tables (pipeline.data.csvtable, `table` below)
    format: Literal["medpix", "csv", "chestxray", "brats", "bags"] = "medpix"
    subset: float | None = None  # chestxray: a stratified, patient-grouped share of the table
    unseen_labels: Literal["error", "drop"] = "error"
    bags: BagOptions = hash_if_set(default=BagOptions())
    table: TableOptions = hash_if_set(default=TableOptions())

    @property
    def is_bags(self) -> bool:
        """Multiple-instance data: one sample is a bag of instances (pipeline.data.mil)."""
        return self.format in ("brats", "bags")

    @property
    def patient_field(self) -> str:
        """The field that names a patient: images of one patient stay in one split or fold."""
        return {"chestxray": "Patient ID", "brats": "bag_id", "bags": "bag_id"}.get(self.format, self.case_id)

    def validate(self) -> None:
        if not self.tasks:
            raise ValueError("tasks", "expected at least one task (name: label field)")
        if not self.table.image_columns:
            raise ValueError("table.image_columns", "expected at least one column name")
        if self.format == "csv" and self.text.case_fields:
            raise ValueError(
                "text.case_fields", "format csv has no case files: put text columns in text.fields"
            )
        if self.format == "brats" and self.channels != len(self.bags.modalities):
            raise ValueError(
                "channels",
                f"expected one channel per modality ({len(self.bags.modalities)}: "
                f"{', '.join(self.bags.modalities)}), got {self.channels}",
            )
        missing = {"train", "dev", "test"} - set(self.splits)
        if missing:
            raise ValueError("splits", f"expected keys train, dev and test; missing {sorted(missing)}")


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    """`name: wordpiece` trains a WordPiece tokenizer on the train split's text (offline);
    any other name is a hub id or a local folder for `AutoTokenizer.from_pretrained`."""

    name: str = "wordpiece"
    vocab_size: int = positive(default=2000)
    max_length: int = positive(default=64)
    lowercase: bool = True


@dataclass(frozen=True, kw_only=True)
class VisionConfig:
    """A timm model: any timm name; `kwargs` are passed to `timm.create_model`."""

    name: str = "vit_tiny_patch16_224"
    source: str = "timm"  # a key of models.backbones.VISION
    pretrained: bool = False
    checkpoint: str | None = None  # local weights file for pretrained=true without a hub
    image_size: int = positive(default=224)
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    # source "cnn" (image-only X-Lite students): self-attention over the CNN's feature map
    attention: Literal["none", "mhsa"] = "none"
    attention_dim: int = positive(default=128)
    attention_heads: int = positive(default=4)
    attention_layers: int = positive(default=1)


@dataclass(frozen=True, kw_only=True)
class TextConfig:
    """A transformers encoder: `pretrained: true` loads `name` (hub id or local folder) with
    `AutoModel.from_pretrained`; otherwise `name` is a model type (bert, distilbert, ...) or a
    name whose config is built with `AutoConfig.for_model(name, **config)`."""

    name: str = "bert"
    source: str = "transformers"  # a key of models.backbones.TEXT
    pretrained: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)
    tokenizer: TokenizerConfig = TokenizerConfig()


@dataclass(frozen=True, kw_only=True)
class FusionConfig:
    """`params` holds the options of the chosen fusion (e.g. modality_dropout's p_img, p_txt,
    per_sample), validated by that fusion's own `Params` dataclass; hashed only when set, so
    the configurations of fusions without options keep their hashes."""

    name: str = "cross_attention"
    dim: int = positive(default=256)
    layers: int = positive(default=1)
    heads: int = positive(default=4)
    dropout: float = unit_interval(default=0.1)
    aux_weight: float = non_negative(default=0.01)  # routing/energy penalty of routing fusions
    params: Mapping[str, Any] = hash_if_set(default_factory=dict)

    def validate(self) -> None:
        if self.dim % self.heads:
            raise ValueError(
                "dim", f"expected dim divisible by heads, got dim={self.dim}, heads={self.heads}"
            )


@dataclass(frozen=True, kw_only=True)
class MILConfig:
    """`name: dsmil`: the vision backbone encodes each instance of a bag and DSMIL (models/dsmil.py)
    scores the bag; `none`: one image per sample (every other dataset). `objective` (what DSMIL
    is trained on and predicts from, losses/dsmil_objective.py): `mean_ce`, kdsweep's default,
    the label loss on the mean of the max-instance and bag scores; `dsmil`, the paper's
    0.5 * BCE(max) + 0.5 * BCE(bag), predicting from the bag score (needs label_loss: ce)."""

    name: Literal["none", "dsmil"] = "none"
    query_dim: int = positive(default=128)
    passing_v: bool = False
    dropout_v: float = unit_interval(default=0.0)
    # hashed only when set: configurations without it keep their hashes, teachers and numbers
    objective: Literal["mean_ce", "dsmil"] = hash_if_set(default="mean_ce")


@dataclass(frozen=True, kw_only=True)
class VolumeConfig:
    """`name` (a key of models/volume3d.py MODELS3D: resnet3d, swin3d): a 3-D model reading each
    patient of a `format: brats` dataset as one whole volume [C, X, Y, Z], the `bags.modalities`
    as channels (pipeline/data/volumes.py), instead of DSMIL's bag of slices; `none`: no 3-D
    model. The volume is cropped to the brain's box and fitted to `shape` (X, Y, Z, as nibabel
    stores it): `pad` centres it in zeros (shrinking it, proportions kept, if larger), `resize`
    resamples it to exactly `shape`. resnet3d: MONAI's ResNet of `depth` layers (`widen_factor`,
    `conv1_t_stride`); swin3d: the encoder of MONAI's SwinUNETR (`feature_size`, `depths`,
    `num_heads`, `window_size`, `patch_size`, `use_v2`). Each model reads only its own fields,
    so a profile sizes both and an experiment picks one by `name`; `kwargs` go to the chosen
    model's MONAI constructor as they are. No pretrained 3-D weights: from scratch."""

    name: str = "none"
    shape: tuple[int, ...] = (128, 128, 128)
    fit: Literal["pad", "resize"] = "pad"
    depth: int = positive(default=50)
    widen_factor: float = positive(default=1.0)
    conv1_t_stride: int = positive(default=1)
    feature_size: int = positive(default=48)
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = positive(default=7)
    patch_size: int = positive(default=2)
    use_v2: bool = False  # swin3d: SwinUNETR-v2's residual conv block before each stage
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError("shape", f"expected three sides >= 1 (X, Y, Z), got {list(self.shape)}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    vision: VisionConfig = VisionConfig()
    text: TextConfig = TextConfig()
    fusion: FusionConfig = FusionConfig()
    modalities: Literal["both", "image", "text"] = "both"  # image/text-only ablations
    dropout: float = unit_interval(default=0.1)
    mil: MILConfig = hash_if_set(default=MILConfig())
    volume: VolumeConfig = hash_if_set(default=VolumeConfig())


@dataclass(frozen=True, kw_only=True)
class LDAMConfig:
    """`label_loss: ldam_drw` (losses/ldam_drw.py): margins max_m * n_c^(-1/4) / max, scale s,
    class-balanced re-weighting (beta) from epoch `drw_epoch` (1-based) on; null: at 80 % of
    the run, as the reference's 160 of 200 epochs."""

    max_m: float = positive(default=0.5)
    s: float = positive(default=30.0)
    drw_epoch: int | None = None
    beta: float = unit_interval(default=0.9999)


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """alpha weights the distillation term: L = alpha*T^2*KL(p_t||p_s) + (1-alpha)*label term
    (kdsweep's convex convention), or + 1*label term for the additive `group_*` losses.
    `params` holds the options of the chosen loss, validated by that loss's own class.

    alpha, temperature and beta left unset (None) take the chosen loss's own `defaults`
    (kdsweep's losses: 0.5, 4.0, 1.0; the group's presets for group_*): `resolved` fills them
    in when the experiment is loaded, so a loaded config holds numbers and hashes them as
    before; unset they are not hashed. alpha's range is the loss's convention, checked there
    too. `train_params`: whether the loss's own parameters (projections) are trained; None is
    the loss's default (trained, except the group's fixed random maps); hashed only when set."""

    name: str = "vanilla"
    alpha: float | None = hash_if_set(default=None)  # range: the loss's (see `resolved`)
    temperature: float | None = optional_positive()
    beta: float | None = _check(lambda v: v is None or v >= 0, "a value >= 0", hash="if_set", default=None)
    # multiclass: ce | focal | weighted_ce; multilabel: bce | weighted_bce | focal (the kind checks)
    label_loss: Literal["ce", "focal", "weighted_ce", "ldam_drw", "bce", "weighted_bce"] = "ce"
    focal_gamma: float = non_negative(default=2.0)
    params: Mapping[str, Any] = field(default_factory=dict)
    ldam: LDAMConfig = hash_if_set(default=LDAMConfig())
    train_params: bool | None = field(default=None, metadata={"hash": "if_set", "param": "if_set"})

    def resolved(self, defaults: Mapping[str, float], convex: bool) -> LossConfig:
        """This section with unset alpha, temperature and beta taken from `defaults` (the
        chosen loss's), and alpha checked against the loss's convention: in [0, 1] when its
        label term is weighted 1 - alpha (`convex`), >= 0 when the label term is added at
        weight 1. Raises ValueError(key, message) like `validate`."""
        keys = ("alpha", "temperature", "beta")
        values = {k: float(defaults[k]) if getattr(self, k) is None else getattr(self, k) for k in keys}
        alpha = values["alpha"]
        if convex and not 0 <= alpha <= 1:
            why = f"loss {self.name} weights its label term 1 - alpha"
            raise ValueError("alpha", f"expected a value in [0, 1] ({why}), got {alpha!r}")
        if alpha < 0:
            why = f"loss {self.name} adds alpha * KD to its label term"
            raise ValueError("alpha", f"expected a value >= 0 ({why}), got {alpha!r}")
        return dataclasses.replace(self, **values)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    teacher_epochs: int = positive(default=5)
    student_epochs: int = positive(default=5)
    batch_size: int = positive(default=32)
    eval_batch_size: int = positive(hash=False, default=64)
    lr: float = positive(default=1e-3)
    # Per-stage rates (None: `lr`). Hashed only when set, so configs without them keep their
    # hashes, teachers and pinned metrics; `lr_for` is the one place that resolves them.
    teacher_lr: float | None = optional_positive()
    student_lr: float | None = optional_positive()
    weight_decay: float = non_negative(default=0.01)
    grad_clip: float = non_negative(default=1.0)  # 0 disables clipping
    # the learning rate over a stage's steps: constant, or cosine from the stage's rate down to 0
    # at its last epoch's last step (pipeline.training.train.schedule). Hashed and logged only
    # when set, so configurations without it keep their hashes, teachers and pinned metrics
    schedule: Literal["constant", "cosine"] = field(
        default="constant", metadata={"hash": "if_set", "param": "if_set"}
    )
    patience: int = positive(default=3)  # early stopping on the dev metric `monitor`
    monitor: str = "avg_f1"  # dev average macro-F1, or "<task>/f1" for one task
    augment: Literal["none", "flip", "flip_crop"] = "none"
    # weighted: a WeightedRandomSampler with inverse class frequencies (single-task multiclass)
    sampler: Literal["none", "weighted"] = hash_if_set(default="none")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = non_negative(hash=False, default=0)
    latency_runs: int = positive(hash=False, default=50)
    # the teacher's outputs computed once per teacher run and train split and read by every
    # student (pipeline.training.teacher_cache); off, or with train.augment, it runs online.
    # Not hashed: the same numbers either way
    teacher_cache: bool = no_hash(default=True)

    def lr_for(self, role: Literal["teacher", "student"]) -> float:
        """The learning rate of the stage that trains `role`: its own rate if set, else `lr`
        (the group trains its ViT teacher at 1e-5 and its small student at 3e-4)."""
        own = self.teacher_lr if role == "teacher" else self.student_lr
        return self.lr if own is None else own


@dataclass(frozen=True, kw_only=True)
class SplitConfig:
    """How train and dev are formed from the dataset's own splits (test is never touched).

    - ``folds: 0`` (default): the dataset's train and dev as they are.
    - ``folds: k``: k-fold cross-validation over train+dev pooled; round ``fold`` is dev and the
      other k-1 folds train. Folds keep each ``group`` (the dataset's patient field) whole, are
      stratified by label when ``stratify`` (multi-label: image-level prevalence and size), and are
      a pure function of the data and ``seed`` (pipeline.data.folds).
    - ``refit: true``: train on train+dev (the final model of a study). Dev is then in-sample:
      its numbers are logged but say nothing about generalisation; only test does.
    A study sets these through its ``cv:`` option and its final phase; a teacher's hash includes
    them, so each fold (and the refit) trains its own teacher, which never sees that dev.
    """

    folds: int = non_negative(default=0)
    fold: int = non_negative(default=0)
    stratify: bool = True
    group: str | None = "patient"  # "patient": the dataset's patient field; null: no grouping
    refit: bool = False

    def validate(self) -> None:
        if self.folds == 1:
            raise ValueError("folds", "expected 0 (no cross-validation) or k >= 2 folds, got 1")
        if self.folds and self.fold >= self.folds:
            raise ValueError("fold", f"expected a fold in [0, {self.folds}), got {self.fold}")
        if self.folds and self.refit:
            raise ValueError("refit", "a refit trains on all of train+dev; it takes no folds")


@dataclass(frozen=True, kw_only=True)
class TrackingConfig:
    """What a run records in MLflow beyond its params, metrics and checkpoints (never hashed: it
    changes no result).

    - ``log_models``: which trained models are logged as MLflow models (PyTorch flavour, with a
      signature, an input example and their code): ``chosen`` (default) every teacher, and at
      the end of a sweep the student configuration chosen on dev, registered as
      ``<study>-<dataset>-student``; ``all`` every teacher and student; ``none`` no model (the
      state-dict checkpoints that resume and teacher reuse read are always logged).
    - ``system_metrics``: teacher and student runs record MLflow's system metrics (CPU, memory,
      and GPU utilisation and memory where a GPU is used) every ``system_metrics_interval`` s.
    """

    log_models: Literal["chosen", "all", "none"] = "chosen"
    system_metrics: bool = True
    system_metrics_interval: float = positive(default=5.0)


@dataclass(frozen=True, kw_only=True)
class PerturbationConfig:
    """Test-time perturbations of the student (pipeline/training/perturb.py): after its normal
    test evaluation, whose metrics and predictions/test.csv they never change, the student is
    evaluated again on altered test inputs, each logged as `test_perturbed/<name>/...` with its
    predictions in predictions/perturbed/<name>.csv. Off by default.

    - ``captions_shuffled``: every sample gets another sample's caption (one seeded cycle).
    - ``image_noise``: Gaussian noise of each std, a fraction of the pixel range (0.1 = 25.5 grey
      levels), added to the raw pixels, clipped and rounded to 8 bits (`image_noise_<std>`).
    - ``image_missing`` / ``text_missing``: the modality's embedding zeroed before the fusion,
      as modality dropout drops it while training.
    - ``seed``: of the permutation and the noise; one fixed seed (not the run's), so every run,
      whatever its training seed, is scored on the same perturbed test set (pairs compare).
    A perturbation of a modality the student does not read (a text-only student's noise) is
    skipped, not an error: one study sets them for all its students."""

    captions_shuffled: bool = False
    image_noise: tuple[float, ...] = _check(
        lambda v: all(0 < x <= 1 for x in v),
        "noise stds in (0, 1] (fractions of the pixel range)",
        default=(),
    )
    image_missing: bool = False
    text_missing: bool = False
    seed: int = non_negative(default=0)

    def validate(self) -> None:
        if len(set(self.image_noise)) != len(self.image_noise):
            raise ValueError("image_noise", f"expected distinct stds, got {list(self.image_noise)}")

    @property
    def enabled(self) -> bool:
        return self.captions_shuffled or bool(self.image_noise) or self.image_missing or self.text_missing


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """What the student is evaluated on besides its test split (hashed and logged only when set:
    configurations without it keep their hashes and params)."""

    perturbations: PerturbationConfig = PerturbationConfig()


@dataclass(frozen=True, kw_only=True)
class PreprocessConfig:
    """How images and text become tensors, the same for teacher and student. The defaults are
    kdsweep's: the dataset's `channels`, letterboxed (aspect kept, black bars), each backbone
    normalising with its own (timm pretrained) mean/std, each tokenizer's own `max_length`.
    The research group's (Wound-1-0 and MedPix alike): `color: rgb`, `resize: stretch`,
    `normalize: given` with mean = std = 0.5, `text_max_length: 256`. A profile or an
    experiment sets this section; the teacher's hash includes it when it is not the default."""

    color: Literal["dataset", "rgb", "gray"] = "dataset"
    resize: Literal["letterbox", "stretch"] = "letterbox"
    normalize: Literal["backbone", "given"] = "backbone"
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)  # used with normalize: given; per channel (or one)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    text_max_length: int | None = None  # null: each role's text.tokenizer.max_length

    def validate(self) -> None:
        for key in ("mean", "std"):
            if len(getattr(self, key)) not in (1, 3):
                raise ValueError(
                    key, f"expected 1 or 3 values (one per channel), got {list(getattr(self, key))}"
                )
        if min(self.std) <= 0:
            raise ValueError("std", f"expected values > 0, got {list(self.std)}")
        if self.text_max_length is not None and self.text_max_length < 1:
            raise ValueError("text_max_length", f"expected a value >= 1 or null, got {self.text_max_length}")

    @property
    def channels_override(self) -> int | None:
        """1 or 3 when `color` overrides the dataset's `channels`, else None."""
        return {"rgb": 3, "gray": 1}.get(self.color)


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    name: str = no_hash(default="experiment")
    profile: str = no_hash(default="tiny")  # the profile's content is hashed through teacher/student
    seed: int = non_negative(default=0)
    # the teacher's own seed (a study's `teacher_seeds`: k teachers, each distilled into every
    # student); null: `seed`, one teacher per seed as before (hashed only when set)
    teacher_seed: int | None = _check(
        lambda v: v is None or v >= 0, "null or a value >= 0", hash="if_set", default=None
    )
    dataset: DatasetConfig
    teacher: ModelConfig = ModelConfig()
    student: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    split: SplitConfig = hash_if_set(default=SplitConfig())
    preprocess: PreprocessConfig = hash_if_set(default=PreprocessConfig())
    output_dir: str = no_hash(default="runs")
    tracking: TrackingConfig = no_hash(default=TrackingConfig())
    eval: EvalConfig = field(default=EvalConfig(), metadata={"hash": "if_set", "param": "if_set"})

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.dataset.tasks)

    @property
    def seed_of_teacher(self) -> int:
        """The seed the teacher is built and trained with."""
        return self.seed if self.teacher_seed is None else self.teacher_seed

    def validate(self) -> None:
        monitor = self.train.monitor
        if monitor != "avg_f1":
            task, _, metric = monitor.rpartition("/")
            if metric not in ("f1", "auc") or task not in self.dataset.tasks:
                raise ValueError(
                    "train.monitor",
                    f"expected avg_f1, <task>/f1 or <task>/auc with a task of dataset {self.dataset.name!r} "
                    f"({', '.join(self.dataset.tasks)}), got {monitor!r}",
                )
        group = self.split.group
        if group is not None and group not in ("patient", self.dataset.patient_field):
            raise ValueError(
                "split.group",
                f"expected patient (dataset {self.dataset.name!r}'s patient field "
                f"{self.dataset.patient_field!r}), that field's name, or null; got {group!r}",
            )
        for role in ("teacher", "student"):
            m: ModelConfig = getattr(self, role)
            three_d = m.volume.name != "none"  # whole volumes (models/volume3d.py), not bags of slices
            if three_d and (m.mil.name != "none" or self.dataset.format != "brats"):
                raise ValueError(
                    f"{role}.volume.name",
                    f"a 3-D model reads whole BraTS volumes: it needs dataset.format brats (dataset "
                    f"{self.dataset.name!r} is {self.dataset.format}) and mil.name none (got {m.mil.name!r})",
                )
            if three_d and (m.modalities != "image" or len(self.dataset.tasks) != 1):
                raise ValueError(
                    f"{role}.volume.name", "a 3-D model reads images only (modalities: image) and one task"
                )
            if self.dataset.is_bags != (m.mil.name != "none" or three_d):
                want = (
                    "a MIL model (mil.name: dsmil) or a 3-D model (volume.name)"
                    if self.dataset.is_bags
                    else "mil.name: none"
                )
                raise ValueError(
                    f"{role}.mil.name",
                    f"dataset {self.dataset.name!r} (format {self.dataset.format}) needs {want}, "
                    f"got {m.mil.name!r}",
                )
            if m.mil.name != "none" and (m.modalities != "image" or len(self.dataset.tasks) != 1):
                raise ValueError(
                    f"{role}.mil.name", "a MIL model reads images only (modalities: image) and one task"
                )
            if m.mil.name != "none" and m.mil.objective == "dsmil" and self.loss.label_loss != "ce":
                # the paper's objective is its own label term: a focal or LDAM variant is not the paper's
                raise ValueError(
                    "loss.label_loss",
                    f"{role}.mil.objective dsmil is the paper's BCE on both streams: expected label_loss ce "
                    f"(the default), got {self.loss.label_loss!r}",
                )
        vols = [m.volume for m in (self.teacher, self.student) if m.volume.name != "none"]
        if len(vols) == 2 and (vols[0].shape, vols[0].fit) != (vols[1].shape, vols[1].fit):
            raise ValueError(
                "student.volume.shape",
                f"expected the teacher's shape and fit ({list(vols[0].shape)}, {vols[0].fit}: one volume "
                f"per patient feeds both), got {list(vols[1].shape)}, {vols[1].fit}",
            )
        if vols and self.train.augment == "flip_crop":
            raise ValueError(
                "train.augment", "expected none or flip with a 3-D model (flips along each axis)"
            )
        pre = self.preprocess
        if self.dataset.is_bags and (pre.color != "dataset" or pre.resize != "letterbox"):
            raise ValueError(
                "preprocess.color",
                f"bags (format {self.dataset.format}) keep their own decoding: "
                "expected color: dataset and resize: letterbox",
            )
        if self.eval.perturbations.enabled and self.dataset.is_bags:  # MIL and 3-D models read bags
            raise ValueError(
                "eval.perturbations",
                f"test-time perturbations alter one image and one caption per sample; dataset "
                f"{self.dataset.name!r} (format {self.dataset.format}) has bags or volumes: expected none set",
            )
        if self.train.sampler == "weighted" and (
            self.dataset.kind != "multiclass" or len(self.dataset.tasks) != 1
        ):
            raise ValueError("train.sampler", "weighted sampling needs one multiclass task")
