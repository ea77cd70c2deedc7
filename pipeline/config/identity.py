"""What identifies a run and its teacher, from the config alone (no torch, no MLflow): the sweep
driver groups trials by teacher and finds their runs with these before any trial starts, and
pipeline.training.run names and tags the runs with the same functions."""

from __future__ import annotations

import dataclasses

from core.schema import ExperimentConfig, PreprocessConfig, SplitConfig
from pipeline.config.extensions import declared
from pipeline.config.loader import config_hash


def teacher_hash(cfg: ExperimentConfig) -> str:
    """What determines the teacher's weights: its model, the data, the seed, its training.
    The student's settings (epochs, student_lr) are normalised away, and the teacher's rate
    enters as `lr`, so one teacher serves every student rate and an unset teacher_lr hashes
    as before."""
    t = cfg.train
    train = dataclasses.replace(t, student_epochs=1, lr=t.lr_for("teacher"), teacher_lr=None, student_lr=None)
    parts = {
        "teacher": cfg.teacher,
        "dataset": cfg.dataset,
        "seed": cfg.seed_of_teacher,
        "train": train,
        "label_loss": [cfg.loss.label_loss, cfg.loss.focal_gamma],
    }
    if cfg.split != SplitConfig():  # a fold's (or the refit's) own teacher; default: hash as before
        parts["split"] = cfg.split
    if cfg.preprocess != PreprocessConfig():  # what the teacher sees; default: hash as before
        parts["preprocess"] = cfg.preprocess
    return config_hash(parts)


def experiment_name(cfg: ExperimentConfig) -> str:
    return f"kdsweep-{cfg.dataset.name}"


def needs_teacher(cfg: ExperimentConfig) -> bool:
    """Whether the student's loss reads a teacher; a sweep trains no teacher for one that does not."""
    return bool(declared("LOSSES").get(cfg.loss.name, "loss.name").attr("uses_teacher"))
