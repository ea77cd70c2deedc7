"""Studies: a base experiment + a search space, loaded and checked before any trial starts.

A study file (sweeps/<name>.yaml)::

    experiment: default                 # base experiment (sweeps/experiments/<name>.yaml)
    overrides: [student.fusion.name=cross_attention]   # fixed for every trial
    space:                              # dotted keys; "a,b" ties keys to one value
      loss.name: [none, vanilla, combined]             # a list: grid values / choices
      loss.alpha: {low: 0.1, high: 0.9}                # a range (random / optuna only)
    metric: dev/avg_f1                  # chosen on dev, never on test
    mode: max
    search: {algorithm: grid, num_samples: 1}          # grid | random | optuna
    seeds: [0]                          # every configuration is repeated over these seeds
    scheduler: none                     # or asha: stop weak trials early on the dev metric
    resources: {cpu: 1, gpu: 0}         # per trial; fractional GPUs pack students on a card
    retries: 1                          # reruns of a trial whose worker/node died (not its own errors)
    cv: {folds: 5, stratify: true, group: patient}   # optional: every trial k-fold over train+dev
    phases: [...]                       # optional: a plan of grids run in order (pipeline.config.phases)
    report: xlite                       # optional: which report document (default: from the space)
    ensemble: {members: [dsmil, resnet3d], methods: [mean]}   # optional: fold models combined

Every discrete combination (ranges at both ends) is composed into a full experiment config
and validated now, so an invalid one is refused with its key and reason before Ray starts.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import ConfigError
from core.schema import ExperimentConfig, non_negative, positive
from pipeline.config.loader import config_hash, load_experiment, parse, read_yaml, sweeps_dir
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
    scheduler: Literal["none", "asha"] = "none"
    resources: Resources = Resources()
    max_concurrent: int = non_negative(default=0)  # 0: as many as the resources allow
    retries: int = non_negative(default=1)  # system failures only (pipeline.sweeps.tune_runner)
    cv: CV | None = None
    phases: tuple[Phase, ...] = ()
    report: str = ""
    ensemble: Ensemble | None = None

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


@dataclass(frozen=True)
class Trial:
    """One configuration of a study at one seed (and fold): its overrides and validated config."""

    point: Mapping[str, Any]  # space key -> value
    seed: int
    overrides: tuple[str, ...]
    cfg: ExperimentConfig
    phase: str = ""
    exp_id: str = ""  # <phase id>_NNN, one per configuration of a phase
    fold: int | None = None
    defining: tuple[str, ...] = ()  # what makes the configuration: base, phase and point overrides

    @property
    def config_hash(self) -> str:
        return config_hash(self.cfg)


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
    return parse(StudyConfig, raw, origins, str(path)), path.read_text(encoding="utf-8")


def _fmt(value: Any) -> str:
    """A value as override text; sections (mappings) and lists as JSON, which YAML reads back."""
    if isinstance(value, Mapping | tuple | list):
        import json

        from pipeline.config.loader import to_dict

        return json.dumps(to_dict(value))
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def short(value: Any) -> str:
    """A value for labels and run names: a section by its name."""
    if isinstance(value, Mapping):
        return str(value.get("name", "section"))
    return _fmt(value)


def point_overrides(point: Mapping[str, Any]) -> list[str]:
    return [f"{k.strip()}={_fmt(value)}" for key, value in point.items() for k in key.split(",")]


def trial_overrides(
    fixed: Iterable[str], extra: Iterable[str], point: Mapping[str, Any], seed: int
) -> tuple[str, ...]:
    """Overrides of one trial, in order: study fixed < command line < the point < seed."""
    return (*fixed, *extra, *point_overrides(point), f"seed={seed}")


def make_trial(
    study: StudyConfig,
    extra: Iterable[str],
    point: Mapping[str, Any],
    seed: int,
    phase: Phase | None = None,
    base: tuple[str, ...] = (),
    fold: int | None = None,
    exp_id: str = "",
) -> Trial:
    """One trial. In a phase: study < base (the chosen configuration) < phase < command line <
    point < fold or refit < seed."""
    phase = phase or Phase(name="", cv=study.cv)
    split: tuple[str, ...] = ()
    if fold is not None and phase.cv is not None:
        split = phase.cv.overrides(fold)
    elif phase.refit:
        split = ("split.refit=true",)
    overrides = (
        *study.overrides,
        *base,
        *phase.overrides,
        *extra,
        *point_overrides(point),
        *split,
        f"seed={seed}",
    )
    try:
        cfg = load_experiment(study.experiment, overrides)
    except ConfigError as e:
        shown = ", ".join(f"{k}={short(v)}" for k, v in point.items())
        where = f"phase {phase.name!r}: " if phase.name else ""
        extra_s = f" fold={fold}" if fold is not None else ""
        raise ConfigError(
            f"study {study.name!r}: {where}invalid configuration [{shown}] seed={seed}{extra_s}: {e}"
        ) from None
    defining = (*base, *phase.overrides, *point_overrides(point))
    return Trial(dict(point), seed, overrides, cfg, phase.name, exp_id, fold, defining)


def expand_phase(
    study: StudyConfig, phase: Phase, extra: Iterable[str] = (), base: tuple[str, ...] = ()
) -> list[Trial]:
    """Every trial of one phase (grid x seeds x folds), all validated; ids in grid order."""
    extra = tuple(extra)
    keys = list(phase.space)
    points = [dict(zip(keys, c, strict=True)) for c in itertools.product(*(phase.space[k] for k in keys))]
    folds: list[int | None] = list(range(phase.cv.folds)) if phase.cv else [None]
    return [
        make_trial(study, extra, p, s, phase, base, f, f"{phase.prefix}_{i:03d}" if phase.name else "")
        for i, p in enumerate(points, 1)
        for s in study.seeds
        for f in folds
    ]


def _values(spec: Any) -> list:
    """Discrete values of a space entry (a range contributes its two ends, for validation)."""
    if isinstance(spec, tuple):
        return list(spec)
    lo, hi = spec["low"], spec["high"]
    return [int(lo), int(hi)] if spec.get("int") else [float(lo), float(hi)]


def _sample(spec: Any, rng: random.Random) -> Any:
    if isinstance(spec, tuple):
        return spec[rng.randrange(len(spec))]
    lo, hi = float(spec["low"]), float(spec["high"])
    if spec.get("log"):
        import math

        value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    else:
        value = rng.uniform(lo, hi)
    return int(round(value)) if spec.get("int") else value


def expand(study: StudyConfig, extra: Iterable[str] = ()) -> list[Trial]:
    """Every trial of a grid or random study (seeds included), all validated. For optuna, the
    discrete corners of the space (validated; trials are suggested while the study runs)."""
    extra = tuple(extra)
    if study.phases:
        raise ConfigError(f"study {study.name!r}: a study with phases expands phase by phase")
    if study.search.algorithm == "grid":
        return expand_phase(study, study.plan()[0], extra)
    keys = list(study.space)
    if study.search.algorithm == "random":
        rng = random.Random(study.search.seed)
        points = [{k: _sample(study.space[k], rng) for k in keys} for _ in range(study.search.num_samples)]
        corners = [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(_values(study.space[k]) for k in keys))
        ]
        for point in corners:  # ranges: both ends must be valid too
            make_trial(study, extra, point, study.seeds[0])
    else:  # optuna: the corners, validated
        points = [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(_values(study.space[k]) for k in keys))
        ]
    folds: list[int | None] = list(range(study.cv.folds)) if study.cv else [None]
    return [make_trial(study, extra, p, s, fold=f) for p in points for s in study.seeds for f in folds]


def plan_trials(study: StudyConfig, extra: Iterable[str] = ()) -> tuple[list[Trial], int]:
    """Every phase expanded and validated now, and the number of trials the plan runs. A phase
    that starts from a choice is validated on the first configuration of each phase it may
    choose from (what it varies is checked; the choice itself was valid in its own phase)."""
    extra = tuple(extra)
    if not study.phases:
        trials = expand(study, extra)
        return trials, len(trials)
    by_phase: dict[str, list[Trial]] = {}
    for phase in study.phases:
        bases = [by_phase[src][0].defining for src in phase.best_of if by_phase[src]] or [()]
        by_phase[phase.name] = [t for base in bases for t in expand_phase(study, phase, extra, base)]
    planned = sum(len(by_phase[p.name]) // max(1, len(p.best_of)) for p in study.phases)
    return [t for ts in by_phase.values() for t in ts], planned
