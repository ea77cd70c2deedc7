"""Helpers shared by the model and end-to-end tests (not fixtures: plain functions)."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient


def tiny_overrides(root: Path, epochs: int = 2) -> list[str]:
    """The tiny profile at 32 px on a small synthetic dataset: a run takes seconds."""
    return [
        f"dataset.root={root}",
        "teacher.vision.image_size=32",
        "teacher.vision.kwargs.img_size=32",
        "student.vision.image_size=32",
        "student.vision.kwargs.img_size=32",
        f"train.teacher_epochs={epochs}",
        f"train.student_epochs={epochs}",
        "train.batch_size=16",
        "train.latency_runs=5",
        "train.device=cpu",
    ]


def runs_by_stage(client: MlflowClient, stage: str) -> list:
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, filter_string=f"tags.stage = '{stage}'", max_results=1000)
