"""A study file, read and checked: its dataclasses (`StudyConfig` and its sections) and
`load_study`, which keeps where each key was written (file:line) for the trials' errors.
The file's format and the expansion into trials: pipeline.config.study."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import ConfigError
from core.schema import non_negative, positive
from pipeline.config.loader import parse, read_yaml, sweeps_dir
from pipeline.config.phases import CV, Phase, check_plan


@dataclass(frozen=True, kw_only=True)
class Search:
    algorithm: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = positive(default=1)  # configurations drawn by random / optuna
    seed: int = 0  # of the random / optuna sampler


@dataclass(frozen=True, kw_only=True)
class Resources:
    cpu: float = positive(default=1.0)
    gpu: float = non_negative(default=0.0)


@dataclass(frozen=True, kw_only=True)
class Ensemble:
    """After the phases, combine the `members` phases' fold models (their FINISHED runs of the
    same seed and fold) by each of `methods` (pipeline.training.ensemble: mean, auc_weighted,
    stacking), one MLflow run per method, seed and fold (pipeline.sweeps.ensemble)."""

    members: tuple[str, ...]
    methods: tuple[Literal["mean", "auc_weighted", "stacking"], ...] = ("mean", "auc_weighted", "stacking")


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    name: str
    description: str = ""
    experiment: str = "default"
    overrides: tuple[str, ...] = ()
    space: Mapping[str, Any] = field(default_factory=dict)
    metric: str = "dev/avg_f1"
    mode: Literal["max", "min"] = "max"
    search: Search = Search()
    seeds: tuple[int, ...] = (0,)
    # k > 1: k teachers (teacher seeds 0..k-1), each trained once and distilled into every
    # configuration and seed (a student that reads no teacher runs once): the teachers' variance
    teacher_seeds: int = positive(default=1)
    scheduler: Literal["none", "asha"] = "none"
    resources: Resources = Resources()
    max_concurrent: int = non_negative(default=0)  # 0: as many as the resources allow
    retries: int = non_negative(default=1)  # system failures only (pipeline.sweeps.tune_runner)
    cv: CV | None = None
    phases: tuple[Phase, ...] = ()
    report: str = ""
    ensemble: Ensemble | None = None
    # dotted key (``space.loss.name``, ``overrides[0]``) -> "file:line": set by `load_study`, so
    # that a trial's error names the study's line rather than calling its keys overrides
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, metadata={"internal": True})

    def plan(self) -> tuple[Phase, ...]:
        """The phases to run; a study without `phases` is one unnamed phase of its space."""
        return self.phases or (Phase(name="", space=self.space, cv=self.cv),)

    def validate(self) -> None:
        if self.phases:
            if self.space:
                raise ValueError("space", "a study with phases puts its space in each phase")
            if self.cv is not None:
                raise ValueError("cv", "a study with phases sets cv in the phases that use it")
            if self.search.algorithm != "grid":
                raise ValueError("search.algorithm", "a study with phases is a grid per phase")
            check_plan(self.phases)
        if self.ensemble is not None:
            names = {p.name: p for p in self.phases}
            unknown = [m for m in self.ensemble.members if m not in names]
            if unknown or len(self.ensemble.members) < 2:
                raise ValueError(
                    "ensemble.members",
                    f"expected two or more phase names ({', '.join(names) or 'no phases'}), got {list(self.ensemble.members)}",
                )
            if (
                len({names[m].cv for m in self.ensemble.members}) != 1
                or names[self.ensemble.members[0]].cv is None
            ):
                raise ValueError("ensemble.members", "expected phases with the same cv (the same folds)")
            if not self.ensemble.methods:
                raise ValueError("ensemble.methods", "expected at least one method")
        if self.cv is not None and self.search.algorithm == "optuna":
            raise ValueError(
                "cv", "cross-validation takes grid or random search (optuna suggests points live)"
            )
        if not self.metric.startswith("dev/"):
            raise ValueError(
                "metric", f"expected a dev metric (dev/avg_f1 or dev/<task>/f1), got {self.metric!r}"
            )
        if not self.seeds:
            raise ValueError("seeds", "expected at least one seed")
        if self.teacher_seeds > 1 and (self.phases or self.cv is not None or self.search.algorithm != "grid"):
            raise ValueError(
                "teacher_seeds", "expected 1 here: several teachers take a grid study without cv or phases"
            )
        if self.teacher_seeds > 1 and "teacher_seed" in self.space:
            raise ValueError("teacher_seeds", "expected 1 when the space sets teacher_seed itself")
        for key, spec in self.space.items():
            if isinstance(spec, tuple):
                if not spec:
                    raise ValueError(f"space.{key}", "expected a non-empty list of values")
            elif isinstance(spec, Mapping):
                if set(spec) - {"low", "high", "log", "int"} or not {"low", "high"} <= set(spec):
                    raise ValueError(f"space.{key}", "expected a list or {low, high[, log, int]}")
                if self.search.algorithm == "grid":
                    raise ValueError(
                        f"space.{key}", "a range needs search.algorithm random or optuna; grid takes lists"
                    )
            else:
                raise ValueError(f"space.{key}", f"expected a list of values or a range, got {spec!r}")


def _path(study: str | Path) -> Path:
    p = Path(study)
    if p.suffix or p.exists():
        return p
    return sweeps_dir() / f"{study}.yaml"


def load_study(study: str | Path, seeds: int | None = None) -> tuple[StudyConfig, str]:
    """The study config and its YAML text (logged with the parent run)."""
    path = _path(study)
    if not path.is_file():
        names = sorted(p.stem for p in sweeps_dir().glob("*.yaml"))
        raise ConfigError(f"{path}: study not found (studies: {', '.join(names)})")
    raw, origins = read_yaml(path)
    raw.setdefault("name", path.stem)
    if seeds is not None:
        if seeds <= 0:
            raise ConfigError(f"SEEDS: expected a number of seeds > 0, got {seeds}")
        raw["seeds"] = list(range(seeds))
    study = dataclasses.replace(parse(StudyConfig, raw, origins, str(path)), origins=dict(origins))
    return study, path.read_text(encoding="utf-8")
