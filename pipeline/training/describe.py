"""A run's description in the MLflow UI (`mlflow.note.content`): its configuration in one line
and its headline figures, so a researcher scanning fifty runs reads what each is without
opening its params. Pure functions of the config and the logged metrics."""

from __future__ import annotations

from collections.abc import Mapping

from core.schema import ExperimentConfig, ModelConfig


def model_line(m: ModelConfig) -> str:
    """The parts of a model that differ between studies: its encoders and how they are joined."""
    if m.volume.name != "none":
        return f"{m.volume.name} on {'x'.join(map(str, m.volume.shape))} volumes"
    vision = f"{m.vision.name}{' (pretrained)' if m.vision.pretrained else ''} {m.vision.image_size}px"
    if m.vision.attention != "none":
        vision += f" + {m.vision.attention}"
    if m.mil.name != "none":
        return f"{m.mil.name} over {vision} instances"
    if m.modalities == "image":
        return vision
    text = f"{m.text.name}{' (pretrained)' if m.text.pretrained else ''}"
    if m.modalities == "text":
        return text
    return f"{vision} + {text}, {m.fusion.name} fusion"


def config_line(cfg: ExperimentConfig, role: str) -> str:
    """One line: the role's model, the dataset, the loss (KD settings where the student
    distils), the training schedule, the seed and the fold. In a sweep the run's name says only
    what its study varies (pipeline.config.names): this line says the rest."""
    m = getattr(cfg, role)
    parts = [f"{role}: {model_line(m)}", f"dataset {cfg.dataset.name}"]
    if role == "student":
        loss = cfg.loss.name
        if loss != "none":
            loss += f" (T {cfg.loss.temperature:g}, alpha {cfg.loss.alpha:g})"
        parts.append(f"loss {loss}, label loss {cfg.loss.label_loss}")
        epochs = cfg.train.student_epochs
    else:
        parts.append(f"label loss {cfg.loss.label_loss}")
        epochs = cfg.train.teacher_epochs
    parts.append(
        f"{epochs} epoch{'s' if epochs != 1 else ''}, lr {cfg.train.lr_for(role):g}, batch {cfg.train.batch_size}"
    )
    if cfg.train.sampler != "none":
        parts.append(f"{cfg.train.sampler} sampler")
    parts.append(f"seed {cfg.seed}")
    if cfg.split.folds:
        parts.append(f"fold {cfg.split.fold} of {cfg.split.folds}")
    return "; ".join(parts)


def headline(cfg: ExperimentConfig, metrics: Mapping[str, float]) -> str:
    """The monitored metric on dev (the restored best checkpoint: what selection reads) and
    on test, and test avg F1 beside it where the monitor is another metric."""
    monitor = cfg.train.monitor
    shown = [(f"dev {monitor}", f"best_dev/{monitor}"), (f"test {monitor}", f"test/{monitor}")]
    if monitor != "avg_f1":
        shown.append(("test avg_f1", "test/avg_f1"))
    return ", ".join(f"{name} **{metrics[key]:.4f}**" for name, key in shown if key in metrics)


def describe(cfg: ExperimentConfig, role: str, metrics: Mapping[str, float]) -> str:
    """The description: the configuration line, then the headline figures."""
    return f"{config_line(cfg, role)}\n\n{headline(cfg, metrics)}"
