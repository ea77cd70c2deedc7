"""One tracked experiment: data -> teacher (trained once, reused) -> student -> evaluation.

The teacher is identified by `teacher_hash` (teacher sub-config, dataset, seed, the training
settings it depends on). A FINISHED teacher run with that hash is reused from its MLflow
checkpoint instead of retrained (`retrain_teacher=True` forces). The student run is tagged with
its teacher's run id. Metric names: see pipeline.training.evaluate; tracked prefixes are ``train/``,
``dev/`` (per epoch), ``best_dev/`` (the restored best checkpoint on dev), ``test/`` and
``latency_ms``, ``latency_p90_ms``, ``size_mb``, ``params``.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from core.schema import ExperimentConfig, LossConfig, ModelConfig
from losses import LOSSES, LossContext
from models.backbone_base import VisionBackbone
from models.model import FrozenTeacher, KDModel
from models.stats import parameter_count, parameter_counts, size_mb
from pipeline import tracking
from pipeline.config.identity import experiment_name, needs_teacher, teacher_hash
from pipeline.config.loader import config_hash, dump_yaml
from pipeline.config.names import run_name, teacher_name
from pipeline.config.params import run_params
from pipeline.data.dataset import DataBundle, load_data
from pipeline.training import teacher_cache
from pipeline.training.describe import describe
from pipeline.training.evaluate import confusion_figure, latency_ms, predict
from pipeline.training.export import log_model
from pipeline.training.perturb import evaluate_perturbed
from pipeline.training.stability import stability_metrics
from pipeline.training.train import fit, resolve_device, seed_everything

Say = Callable[[str], None]


@dataclass
class RunResult:
    teacher_run_id: str
    student_run_id: str
    teacher_reused: bool
    teacher: dict[str, float]
    student: dict[str, float]


def build_model(cfg: ModelConfig, data: DataBundle, role: str, seed: int) -> KDModel:
    """The role's model for this data; with `preprocess.normalize: given` every vision backbone
    normalises with the given mean/std instead of its own (here, not in models/, because it is
    a property of the data's preprocessing that both roles share)."""
    seed_everything(seed)
    tok = data.tokenizers[role]
    model = KDModel(cfg, data.kind, len(tok) if tok is not None else 0, data.channels, role)
    if data.normalize is not None:
        for m in model.modules():
            if isinstance(m, VisionBackbone):
                c = m.mean.shape[1]  # the backbone's channels; one given value serves them all
                for buf, given in zip((m.mean, m.std), data.normalize, strict=True):
                    values = (given * c if len(given) == 1 else given)[:c]
                    buf.copy_(torch.tensor(values, dtype=buf.dtype).view(1, -1, 1, 1))
    return model


def loss_context(data: DataBundle, student: KDModel, teacher: KDModel) -> LossContext:
    labels = data.splits["train"].t["labels"]
    counts = {t: data.kind.label_counts(t, labels[t]) for t in data.tasks}
    return LossContext(
        data.tasks,
        data.num_classes(),
        counts,
        student.feature_dim,
        teacher.feature_dim,
        len(data.splits["train"]),
        data.kind,
        student.mil_objective,  # the trained model's: the teacher's when the teacher is trained
    )


def teacher_loss(loss: LossConfig) -> LossConfig:
    """The teacher's objective: the label term of `loss` alone (`none`), without the student's
    loss options, which `none` does not take."""
    return dataclasses.replace(loss, name="none", params={})


def evaluate_and_log(
    model: KDModel, data: DataBundle, cfg: ExperimentConfig, device: torch.device, log: tracking.RunLog
) -> dict[str, float]:
    """Test metrics, confusion matrices, predictions, size and latency, logged to the run."""
    loader = data.loader("test", cfg.train.eval_batch_size)
    pred = predict(model, loader, device, data.kind)
    # dev predictions of the restored best checkpoint: what model selection may look at, and
    # where a kind tunes what it tunes (multilabel thresholds), never on test
    dev_pred = predict(model, data.loader("dev", cfg.train.eval_batch_size), device, data.kind)
    values, extras = data.kind.metrics(pred, tune=dev_pred)
    out = {f"test/{k}": v for k, v in values.items()}
    # the same checkpoint on its own training data (unaugmented): the train-vs-dev gap
    train_pred = predict(
        model, data.loader("train", cfg.train.eval_batch_size, plain=True), device, data.kind
    )
    for prefix, p in (("best_dev", dev_pred), ("best_train", train_pred)):
        values_p, _ = data.kind.metrics(p)
        out.update(
            {
                f"{prefix}/{k}": v
                for k, v in values_p.items()
                if "/precision/" not in k and "/recall/" not in k
            }
        )
    out.update(latency_ms(model, next(iter(loader)), device, runs=cfg.train.latency_runs))
    out.update({"size_mb": size_mb(model), "params": float(parameter_count(model))})
    # per part (vision, text, fusion, heads...): what a compression ratio is made of
    out.update({f"params/{part}": float(n) for part, n in parameter_counts(model).items()})
    out["peak_rss_mb"] = _peak_rss_mb()  # this process's high-water mark so far (a bound per trial)
    log.metrics(out)
    for task, cm in extras.get("confusion", {}).items():
        fig = confusion_figure(cm, data.label_maps[task], f"{model.role} test {task}")
        log.figure(fig, f"confusion/{task}.png")
        import matplotlib.pyplot as plt

        plt.close(fig)
    for task, pairs in extras.get("confused_pairs", {}).items():
        log.json([list(x) for x in pairs], f"errors/{task}_confused_pairs.json")
    log.text(data.kind.predictions_csv(pred), "predictions/test.csv")
    log.text(data.kind.predictions_csv(dev_pred), "predictions/dev.csv")  # what ensembles are fitted on
    summary = data.kind.summary(values, extras)  # the same keys for every model of this kind
    log.text(json.dumps(summary, indent=1, default=float), "metrics.json")
    return out


def _peak_rss_mb() -> float:
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _log_common(log: tracking.RunLog, cfg: ExperimentConfig, data: DataBundle) -> None:
    params = run_params(cfg)  # the sections that apply to this run's data format and models
    # the rate each stage trains at, not null where the stage falls back to train.lr
    params.update({f"train.{r}_lr": cfg.train.lr_for(r) for r in ("teacher", "student")})
    log.params(params)
    sizes = {n: len(d) for n, d in data.splits.items()}
    fold = str(cfg.split.fold) if cfg.split.folds else ("refit" if cfg.split.refit else "")
    log.datasets(cfg.dataset.name, cfg.dataset.root, data.digests, sizes, fold)
    log.metrics(data.facts())  # what reports say about the data (bags: counts and sizes)
    log.text(dump_yaml(cfg), "config.yaml")
    # in the order of the model's heads (not sorted, unlike RunLog.json): what rebuilds the model
    log.text(json.dumps({t: list(c) for t, c in data.label_maps.items()}, indent=2), "label_maps.json")


def _sampling(cfg: ExperimentConfig) -> float:
    """Seconds between system-metrics samples of a trial run; 0: none (tracking.system_metrics)."""
    return cfg.tracking.system_metrics_interval if cfg.tracking.system_metrics else 0.0


def _tags(cfg: ExperimentConfig, role: str) -> dict[str, str]:
    m = getattr(cfg, role)
    tags = {
        "dataset": cfg.dataset.name,
        "stage": role,
        "fusion": m.fusion.name,
        "vision": m.vision.name if m.volume.name == "none" else m.volume.name,  # 3-D: resnet3d, swin3d
        "text": m.text.name,
        "seed": str(cfg.seed_of_teacher if role == "teacher" else cfg.seed),
        "profile": cfg.profile,
        "tasks": ",".join(cfg.dataset.tasks),
        "teacher_hash": teacher_hash(cfg),
    }
    if cfg.teacher_seed is not None:  # one of a study's k teachers (`teacher_seeds`)
        tags["teacher_seed"] = str(cfg.teacher_seed)
    if m.mil.name != "none":  # the objective the run trained with: what the MIL and BraTS reports read
        tags["mil_objective"] = m.mil.objective
    return tags


@dataclass(frozen=True)
class Tracking:
    """Where runs go: the sweep's parent run, tags every run of the sweep carries, and the names
    the sweep gives the student and teacher runs (pipeline.config.names; empty: a run outside
    a study, named in full)."""

    parent_run_id: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    name: str = ""
    teacher_name: str = ""


def prepare(cfg: ExperimentConfig, say: Say = print) -> tuple[DataBundle, torch.device]:
    device = resolve_device(cfg.train.device)
    models = [cfg.teacher, cfg.student]
    flat = [m for m in models if m.volume.name == "none"]  # 3-D models read volumes, not images
    size = max((m.vision.image_size for m in flat), default=0)
    vols = [m.volume for m in models if m.volume.name != "none"]
    volume = (vols[0].shape, vols[0].fit) if vols else None  # the schema makes both roles agree
    # an image-only model reads no text: no tokenizer is built (or trained) for it
    tokenizers = {
        r: None if getattr(cfg, r).modalities == "image" else getattr(cfg, r).text.tokenizer
        for r in ("teacher", "student")
    }
    data = load_data(
        cfg.dataset,
        size,
        tokenizers,
        cfg.train.augment,
        cfg.split,
        cfg.seed,
        volume,
        bool(flat),
        cfg.preprocess,
    )
    n = {s: len(d) for s, d in data.splits.items()}
    how = (
        f" (fold {cfg.split.fold} of {cfg.split.folds} over train+dev)"
        if cfg.split.folds
        else " (refit: train = train+dev; dev is in-sample)"
        if cfg.split.refit
        else ""
    )
    say(
        f"data {cfg.dataset.name}: train {n['train']} / dev {n['dev']} / test {n['test']}{how}; tasks "
        + ", ".join(f"{t} ({k} classes)" for t, k in data.num_classes().items())
        + f"; device {device}"
    )
    return data, device


def ensure_teacher(
    cfg: ExperimentConfig,
    data: DataBundle,
    device: torch.device,
    retrain: bool = False,
    where: Tracking = Tracking(),
    say: Say = print,
    on_epoch: Callable[[str, int, dict], None] | None = None,
) -> tuple[KDModel, str, bool, dict[str, float]]:
    """(teacher, its run id, whether it was reused, its test metrics): a FINISHED teacher run
    with the same teacher hash is loaded from MLflow; otherwise one is trained and logged."""
    exp, th = experiment_name(cfg), teacher_hash(cfg)
    found = None if retrain else tracking.find_finished(exp, {"stage": "teacher", "teacher_hash": th})
    if found:
        teacher = build_model(cfg.teacher, data, "teacher", cfg.seed_of_teacher)
        teacher.load_state_dict(tracking.load_state_dict(found, "teacher/model.pt"))
        keep = ("latency_ms", "size_mb", "params")
        metrics_ = {
            k: v
            for k, v in tracking.get_run(found).data.metrics.items()
            if k.startswith("test/") or k in keep
        }
        say(f"teacher: reusing FINISHED run {found} (teacher hash {th})")
        return teacher, found, True, metrics_
    with tracking.run(
        exp,
        where.teacher_name or teacher_name(cfg),
        {**_tags(cfg, "teacher"), **where.tags, "config_hash": th},
        where.parent_run_id,
        _sampling(cfg),
    ) as log:
        _log_common(log, cfg, data)
        # built inside the run: a model that fails to build is a FAILED run with its reason
        teacher = build_model(cfg.teacher, data, "teacher", cfg.seed_of_teacher)
        say(f"teacher: training ({parameter_count(teacher) / 1e6:.2f} M params, hash {th})")
        label_only = LOSSES.get("none")(teacher_loss(cfg.loss), loss_context(data, teacher, teacher))
        fitted = fit(
            teacher,
            label_only,
            data,
            cfg.train,
            cfg.train.teacher_epochs,
            cfg.seed_of_teacher,
            device,
            on_epoch=lambda e, r: (log.metrics(r, e), on_epoch and on_epoch("teacher", e, r)),
            lr=cfg.train.lr_for("teacher"),
        )
        log.metrics(stability_metrics(fitted.history, cfg.train.monitor))
        metrics_ = evaluate_and_log(teacher, data, cfg, device, log)
        log.describe(describe(cfg, "teacher", metrics_))
        log.state_dict(teacher.state_dict(), "teacher/model.pt")
        if cfg.tracking.log_models != "none":  # teachers are reused: each is an MLflow model
            log_model(log, teacher, data, cfg)
        return teacher, log.run_id, False, metrics_


def run_student(
    cfg: ExperimentConfig,
    data: DataBundle,
    device: torch.device,
    teacher: KDModel | None,
    teacher_run: str,
    where: Tracking = Tracking(),
    say: Say = print,
    on_epoch: Callable[[str, int, dict], None] | None = None,
) -> tuple[str, dict[str, float]]:
    """Distil a student from the frozen teacher; (its run id, its final metrics). `teacher` may be
    None only for a loss that reads none (`needs_teacher`); `teacher_run` is then the FINISHED
    teacher of the same hash if one exists (for the reports' teacher columns), else empty."""
    if teacher is None and needs_teacher(cfg):
        raise ValueError(f"loss.name={cfg.loss.name} distils from a teacher: none was given")
    tags = {
        **_tags(cfg, "student"),
        **where.tags,
        "loss": cfg.loss.name,
        "config_hash": config_hash(cfg),
    }
    if teacher_run:
        tags["teacher_run_id"] = teacher_run
    with tracking.run(
        experiment_name(cfg), where.name or run_name(cfg), tags, where.parent_run_id, _sampling(cfg)
    ) as log:
        _log_common(log, cfg, data)
        frozen = FrozenTeacher(teacher).to(device) if teacher is not None else None
        if frozen is not None and needs_teacher(cfg):
            cached, outputs = teacher_cache.mode(cfg.train.augment, cfg.train.teacher_cache, teacher_run)
            if cached:  # every student of this teacher and split reads the same file
                frozen = teacher_cache.cached_teacher(
                    frozen, data, teacher_run, cfg.train.eval_batch_size, device
                )
            log.tags({"teacher_outputs": outputs})
        student = build_model(cfg.student, data, "student", cfg.seed + 1)
        ctx = loss_context(data, student, teacher if teacher is not None else student)
        loss_fn = LOSSES.get(cfg.loss.name, "loss.name")(cfg.loss, ctx)
        log.tags({"loss.formula": loss_fn.formula()})  # the objective with this run's numbers
        say(f"student: distilling with {cfg.loss.name} ({parameter_count(student) / 1e6:.2f} M params)")
        fitted = fit(
            student,
            loss_fn,
            data,
            cfg.train,
            cfg.train.student_epochs,
            cfg.seed,
            device,
            teacher=frozen,
            on_epoch=lambda e, r: (log.metrics(r, e), on_epoch and on_epoch("student", e, r)),
            lr=cfg.train.lr_for("student"),
        )
        log.metrics(stability_metrics(fitted.history, cfg.train.monitor))
        metrics_ = evaluate_and_log(student, data, cfg, device, log)
        if cfg.eval.perturbations.enabled:  # after the clean test evaluation, on copies of the test inputs
            bs = cfg.train.eval_batch_size
            metrics_.update(evaluate_perturbed(student, data, cfg.eval.perturbations, bs, device, log, say))
        log.describe(describe(cfg, "student", metrics_))
        log.state_dict(student.state_dict(), "student/model.pt")
        if cfg.tracking.log_models == "all":  # "chosen": the sweep logs the one chosen on dev
            log_model(log, student, data, cfg)
        with tempfile.TemporaryDirectory() as d:
            for role, tok in data.tokenizers.items():
                if tok is not None:
                    tok.save_pretrained(Path(d) / role)
            if any(Path(d).iterdir()):
                log.folder(Path(d), "tokenizers")
        return log.run_id, metrics_


def run_experiment(
    cfg: ExperimentConfig,
    retrain_teacher: bool = False,
    say: Say = print,
    on_epoch: Callable[[str, int, dict], None] | None = None,
    where: Tracking = Tracking(),
) -> RunResult:
    """data -> teacher (trained once, reused) -> student -> evaluation, all tracked."""
    data, device = prepare(cfg, say)
    teacher, teacher_run, reused, t_metrics = ensure_teacher(
        cfg, data, device, retrain_teacher, where, say, on_epoch
    )
    student_run, s_metrics = run_student(cfg, data, device, teacher, teacher_run, where, say, on_epoch)
    return RunResult(teacher_run, student_run, reused, t_metrics, s_metrics)
