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
and validated now, so an invalid one is refused with its key and reason before Ray starts,
at the study file's line for a key the study wrote (its `overrides` entries, its space's
keys); only the command line's `key=value` are called overrides.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError
from core.schema import ExperimentConfig
from pipeline.config.identity import needs_teacher
from pipeline.config.loader import config_hash, load_experiment
from pipeline.config.overrides import Override
from pipeline.config.phases import Phase
from pipeline.config.studyfile import Ensemble, Resources, Search, StudyConfig, load_study  # noqa: F401  (re-exported)


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
    at = study.origins
    # the study file's keys are named by their line; `extra` alone is the command line's
    index = next((i for i, p in enumerate(study.phases) if p is phase), None)
    pk = f"phases[{index}]." if index is not None else ""

    def written(texts: Iterable[str], key: str) -> list[Override]:
        return [Override(t, at.get(key.format(i=i), "")) for i, t in enumerate(texts)]

    split: tuple[str, ...] = ()
    if fold is not None and phase.cv is not None:
        split = phase.cv.overrides(fold)
    elif phase.refit:
        split = ("split.refit=true",)
    overrides = (
        *written(study.overrides, "overrides[{i}]"),
        *written(base, f"{pk}best_of"),
        *written(phase.overrides, pk + "overrides[{i}]"),
        *extra,
        *(
            Override(f"{k.strip()}={_fmt(value)}", at.get(f"{pk}space.{key}", ""))
            for key, value in point.items()
            for k in key.split(",")
        ),
        *written(split, f"{pk}cv" if fold is not None else f"{pk}refit"),
        Override(f"seed={seed}", at.get("seeds", "")),
    )
    try:
        cfg = load_experiment(study.experiment, overrides, at.get("experiment", "study"))
    except ConfigError as e:
        shown = ", ".join(f"{k}={short(v)}" for k, v in point.items())
        where = f"phase {phase.name!r}, " if phase.name else ""
        extra_s = f" fold={fold}" if fold is not None else ""
        raise ConfigError(
            f"{e} (study {study.name!r}: {where}configuration [{shown}] seed={seed}{extra_s})"
        ) from None
    defining = (*base, *phase.overrides, *point_overrides(point))
    texts = tuple(o.text if isinstance(o, Override) else o for o in overrides)
    return Trial(dict(point), seed, texts, cfg, phase.name, exp_id, fold, defining)


def expand_phase(
    study: StudyConfig, phase: Phase, extra: Iterable[str] = (), base: tuple[str, ...] = ()
) -> list[Trial]:
    """Every trial of one phase (grid x seeds x folds), all validated; ids in grid order."""
    extra = tuple(extra)
    keys = list(phase.space)
    points = [dict(zip(keys, c, strict=True)) for c in itertools.product(*(phase.space[k] for k in keys))]
    folds: list[int | None] = list(range(phase.cv.folds)) if phase.cv else [None]
    if study.teacher_seeds > 1:  # every point against each teacher (validated: a plain grid)
        points = [{**p, "teacher_seed": j} for p in points for j in range(study.teacher_seeds)]
    trials = [
        make_trial(study, extra, p, s, phase, base, f, f"{phase.prefix}_{i:03d}" if phase.name else "")
        for i, p in enumerate(points, 1)
        for s in study.seeds
        for f in folds
    ]
    if study.teacher_seeds == 1:
        return trials
    # a student that reads no teacher (`none`) would be the same run once per teacher: it runs
    # once, without a teacher seed (so no report counts it as one teacher's)
    out = []
    for t in trials:
        if needs_teacher(t.cfg):
            out.append(t)
        elif t.point["teacher_seed"] == 0:
            point = {k: v for k, v in t.point.items() if k != "teacher_seed"}
            out.append(make_trial(study, extra, point, t.seed, phase, base, t.fold, t.exp_id))
    return out


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
