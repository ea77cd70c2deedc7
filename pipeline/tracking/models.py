"""Trained weights in the store: a module as an MLflow PyTorch model, the model registry, and
the plain state-dict checkpoints that teacher reuse and registration load back. Torch and
MLflow are imported by the calls that need them, never with the module."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.tracking.store import PROJECT_ROOT, client

if TYPE_CHECKING:
    import torch
    from mlflow.tracking import MlflowClient


def log_model(
    c: MlflowClient,
    run_id: str,
    module: Any,
    name: str,
    example: Any,
    metadata: Mapping[str, Any],
    three_d: bool = False,
) -> str:
    """`module` as an MLflow PyTorch model `name` of run `run_id` (pickled, with the project's
    models/, core/ and tasks/ as its code), its signature inferred from `example` and the
    module's output on it; returns its model URI. Requirements are pinned from this
    environment instead of MLflow's inference (which loads the model in a subprocess)."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    with torch.no_grad():
        output = module(torch.as_tensor(example)).numpy()
    packages = ["torch", "torchvision", "timm", "transformers", "numpy"] + (
        ["monai", "einops"] if three_d else []
    )
    # the logged model joins the run's experiment (MLflow puts it in the active one), where
    # `runs:/<run id>/<name>` looks it up
    mlflow.set_experiment(experiment_id=c.get_run(run_id).info.experiment_id)
    _known_packages(packages)
    quiet = logging.getLogger("mlflow")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # MLflow warns on every pickled model
    try:
        info = mlflow.pytorch.log_model(
            module,
            name=name,
            run_id=run_id,
            code_paths=[str(PROJECT_ROOT / p) for p in ("models", "core", "tasks")],
            signature=infer_signature(example, output),
            input_example=example,
            pip_requirements=[_pinned(p) for p in packages],
            serialization_format="pickle",
            metadata=dict(metadata),
        )
    finally:
        quiet.setLevel(level)
    return info.model_uri


def _known_packages(packages: list[str]) -> None:
    """Tell MLflow which module each pinned package provides before it checks the pins.

    MLflow checks a model's requirements against this environment (a warning only) and, to do
    so, first maps every installed distribution to its modules: about 3 s of CPU per process,
    paid by every trial's worker for pins it has just read from this same environment. Giving
    it the map for our pins (each package is its own module) skips that scan; its check then
    runs as before. Nothing is changed where MLflow has built its map already."""
    from mlflow.utils import requirements_utils as reqs

    if getattr(reqs, "_MODULES_TO_PACKAGES", ...) is None:
        reqs._MODULES_TO_PACKAGES = {p: [p] for p in ("mlflow", *packages)}
        reqs._MODULES_TO_PACKAGES.update(getattr(reqs, "MLFLOW_MODULES_TO_PACKAGES", {}))


def _pinned(package: str) -> str:
    from importlib.metadata import version

    return f"{package}=={version(package).split('+')[0]}"


def register(model_uri: str, name: str, tags: Mapping[str, str], description: str = "") -> str:
    """Register a logged model under `name` (created on first use), the version tagged with
    `tags`; returns the version number. `description` (markdown) goes on the version and on
    the registered model, whose page shows what its latest version is."""
    import mlflow

    c = client()  # the tracking URI, set
    # MLflow prints "Successfully registered model ..." / "Created version ..." to stderr itself;
    # the sweep says it in its own line (errors still raise, with MLflow's message)
    with contextlib.redirect_stderr(io.StringIO()):
        version = mlflow.register_model(model_uri, name, tags=dict(tags), await_registration_for=60)
    if description:  # register_model takes none: set once the version exists
        c.update_model_version(name, version.version, description=description)
        c.update_registered_model(name, description=description)
    return str(version.version)


def save_state_dict(c: MlflowClient, run_id: str, state: Mapping[str, torch.Tensor], path: str) -> None:
    """`state` (moved to CPU, detached) as the artifact `path` of run `run_id`: a checkpoint
    that `load_state_dict` reads back with weights_only=True."""
    import torch

    with tempfile.TemporaryDirectory() as d:
        local = Path(d) / Path(path).name
        torch.save({k: v.detach().cpu() for k, v in state.items()}, local)
        c.log_artifact(run_id, str(local), str(Path(path).parent) if "/" in path else None)


def load_state_dict(run_id: str, path: str) -> dict[str, torch.Tensor]:
    """A checkpoint logged with `RunLog.state_dict`, loaded with weights_only=True."""
    import torch

    c = client()
    with tempfile.TemporaryDirectory() as d:
        local = c.download_artifacts(run_id, path, d)
        data = Path(local).read_bytes()
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
