"""Phases of a study: a plan run in order, where a later phase starts from what an earlier one
chose on the study's dev metric (never on test).

    phases:
      - {name: baseline, id: BASELINE, overrides: [loss.name=none], space: {student.vision.name: [a, b]}}
      - {name: distillation, id: KD, space: {loss.temperature: [4, 8], loss.alpha: [0.7, 0.5]}}
      - {name: sensitivity_tau, id: TAU, best_of: [distillation], space: {loss.temperature: [2, 4, 6, 8]}}
      - {name: cv, id: CV, best_of: [baseline, distillation], cv: {folds: 5}}
      - {name: final, id: FINAL, best_of: [baseline, distillation], refit: true}

A phase's trials are its space's grid (one point when it has none), repeated over the study's
seeds and, with `cv`, over folds. Overrides apply in this order (later wins): the study's, the
chosen configuration's (`best_of`), the phase's, the command line's, the point, the fold or
refit, the seed. Each configuration gets an id `<id>_001`, `<id>_002`, ... in grid order. A
configuration that an earlier phase already ran (same config hash) is not run again: the
phase lists the earlier run under its own id.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.schema import positive


@dataclass(frozen=True, kw_only=True)
class CV:
    """k-fold cross-validation over train+dev (test held out); see core.schema.SplitConfig."""

    folds: int = positive(default=5)
    stratify: bool = True
    group: str | None = "patient"  # the dataset's patient field (or its name); null: none

    def validate(self) -> None:
        if self.folds < 2:
            raise ValueError("folds", f"expected k >= 2 folds, got {self.folds}")

    def overrides(self, fold: int) -> tuple[str, ...]:
        group = "null" if self.group is None else self.group
        return (
            f"split.folds={self.folds}",
            f"split.fold={fold}",
            f"split.stratify={str(self.stratify).lower()}",
            f"split.group={group}",
        )


@dataclass(frozen=True, kw_only=True)
class Phase:
    name: str
    id: str = ""  # experiment-id prefix: KD -> KD_001, KD_002, ...; default: the name upper-cased
    overrides: tuple[str, ...] = ()
    space: Mapping[str, Any] = field(default_factory=dict)  # lists only (a grid)
    best_of: tuple[str, ...] = ()  # start from the best configuration of these earlier phases
    cv: CV | None = None
    refit: bool = False  # train on train+dev: the final model, evaluated once on test

    @property
    def prefix(self) -> str:
        return self.id or self.name.upper()

    def validate(self) -> None:
        for key, spec in self.space.items():
            if not isinstance(spec, tuple) or not spec:
                raise ValueError(f"space.{key}", "expected a non-empty list of values (phases are grids)")
        if self.cv is not None and self.refit:
            raise ValueError("refit", "a refit trains on all of train+dev; it takes no cv")


def check_plan(phases: Sequence[Phase]) -> None:
    """Names unique; `best_of` names earlier phases only. Raises ValueError(key, message)."""
    seen: list[str] = []
    for i, p in enumerate(phases):
        if p.name in seen:
            raise ValueError(f"phases[{i}].name", f"duplicate phase name {p.name!r}")
        for src in p.best_of:
            if src not in seen:
                raise ValueError(
                    f"phases[{i}].best_of",
                    f"expected earlier phases ({', '.join(seen) or 'none'}), got {src!r}",
                )
        seen.append(p.name)


@dataclass(frozen=True)
class Choice:
    """The configuration a phase starts from: the best mean dev metric among earlier phases."""

    exp_id: str
    defining: tuple[str, ...]  # the overrides that make this configuration (no seed, no fold)
    point: Mapping[str, Any]
    dev: float
    run_ids: tuple[str, ...]


def choose(candidates: Sequence[Mapping[str, Any]], mode: str) -> Choice | None:
    """The best configuration among finished trial rows (dicts with exp_id, defining, point, dev,
    run_id): mean dev over its seeds and folds; ties go to the earlier configuration. None when
    no configuration has a dev value."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in candidates:
        if row.get("dev") is not None and not math.isnan(row["dev"]):
            groups.setdefault(tuple(row["defining"]), []).append(row)
    if not groups:
        return None
    sign = 1.0 if mode == "max" else -1.0
    best = max(groups.values(), key=lambda rows: sign * statistics.fmean(r["dev"] for r in rows))
    first = best[0]
    return Choice(
        first["exp_id"],
        tuple(first["defining"]),
        dict(first["point"]),
        statistics.fmean(r["dev"] for r in best),
        tuple(sorted({r["run_id"] for r in best if r.get("run_id")})),
    )
