"""The dependency direction, checked on the source: models/ and losses/ depend only on the small
shared core (schema, registry, errors), never on pipeline/ (which imports them: a cycle); the
core depends on nothing of the project; only pipeline.tracking imports MLflow and only
pipeline.sweeps.tune_runner imports Ray Tune."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("core", "pipeline", "models", "losses", "reports", "bench", "tasks")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (REPO / f).rglob("*.py"))


@pytest.mark.parametrize("path", files("models", "losses"), ids=lambda p: str(p.relative_to(REPO)))
def test_models_and_losses_depend_only_on_the_core(path):
    bad = {
        m
        for m in imports(path)
        if m.split(".")[0] in PROJECT and m.split(".")[0] not in ("core", "models", "losses")
    }
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", files("core"), ids=lambda p: str(p.relative_to(REPO)))
def test_core_depends_on_nothing_of_the_project(path):
    bad = {m for m in imports(path) if m.split(".")[0] in PROJECT and m.split(".")[0] != "core"}
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_one_module_talks_to_mlflow_and_one_to_ray_tune():
    code = files("core", "pipeline", "models", "losses", "reports", "tasks")
    mlflow = {
        p.relative_to(REPO).as_posix() for p in code if any(m.split(".")[0] == "mlflow" for m in imports(p))
    }
    tune = {
        p.relative_to(REPO).as_posix()
        for p in code
        if any(m.startswith("ray.tune") or m == "ray.tune" for m in imports(p))
    }
    tune |= {
        p.relative_to(REPO).as_posix()
        for p in code
        if "from ray import tune" in p.read_text(encoding="utf-8")
    }
    assert mlflow and all(p.startswith("pipeline/tracking/") for p in mlflow), mlflow  # one package
    assert tune == {"pipeline/sweeps/tune_runner.py"}
