"""The one grouping model of the reports: a configuration's FINISHED runs over seeds (`Group`, at
one fold under cross-validation) and a configuration over its folds (`Folds`). The flat studies
group a sweep's runs by trial label (`configs`); the phased studies by phase, experiment and fold
(reports.phased). Numbers are means over the group's seeds; metric names are MLflow's
(`test/avg_f1`, `best_dev/<task>/auc`, ...)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from reports.query import Sweep
from reports.stats import fmt, mean_std


def tasks(sweep: Sweep) -> list[str]:
    """The sweep's tasks: the runs' `tasks` tag, else the tasks of their test F1 metrics."""
    runs = sweep.runs
    if "tags.tasks" in runs and runs["tags.tasks"].notna().any():
        return str(runs["tags.tasks"].dropna().iloc[0]).split(",")
    return sorted({c.split("/")[1] for c in runs.columns if re.fullmatch(r"metrics\.test/[^/]+/f1", c)})


def task_field(sweep: Sweep, task: str) -> str:
    """The dataset field a task's labels come from ('?' when the runs do not say)."""
    col = f"params.dataset.tasks.{task}"
    return str(sweep.runs[col].dropna().iloc[0]) if col in sweep.runs else "?"


def task_classes(sweep: Sweep, task: str) -> list[str]:
    """The class names of a multiclass task, from the per-class test recall its runs log (empty
    for a task without them)."""
    prefix = f"metrics.test/{task}/recall/"
    runs = sweep.runs
    return [c[len(prefix) :] for c in runs.columns if c.startswith(prefix) and runs[c].notna().any()]


@dataclass
class Group:
    """One configuration's FINISHED runs over seeds; under cross-validation, at one fold.

    Flat studies: `label` is the trial label without its seed; `asked` the seeds the study asked
    for; `matched` the seeds every configuration of the sweep FINISHED. Cells show the group's own
    runs (and say when they are fewer than asked); every comparison (ranking, best, bold,
    differences, intervals, plots) uses `fair`, the runs of the matched seeds, so that a lucky
    single seed never competes with means. Phased studies: `phase`, `exp_id`, `fold`, and the
    `trials` (trials.json entries) of the group, FINISHED or not; `runs` sorted by seed."""

    label: str
    runs: pd.DataFrame
    asked: int = 0
    matched: tuple[int, ...] = ()
    phase: str = ""
    exp_id: str = ""
    fold: int | None = None
    trials: list[dict] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    # --- the runs -------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        return not self.runs.empty

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.runs["params.seed"]] if "params.seed" in self.runs else []

    @property
    def run_ids(self) -> frozenset[str]:
        return frozenset(self.runs["run_id"]) if self.ok else frozenset()

    def on(self, seeds: tuple[int, ...] | list[int]) -> Group:
        """The same configuration restricted to the runs of `seeds`."""
        if "params.seed" not in self.runs:
            return self
        keep = self.runs["params.seed"].astype(int).isin(list(seeds))
        return dataclasses.replace(self, runs=self.runs[keep])

    @cached_property  # set once `matched` is known (in `configs`); read by every comparison
    def fair(self) -> Group:
        return self.on(self.matched)

    def run_of(self, seed: int) -> pd.Series:
        """run_id and artifact_uri of the run of `seed` (only those: the runs frame is wide).
        A loop over the few runs: pandas' indexing took milliseconds a call, seconds a report."""
        runs = self.runs
        for s, rid, uri in zip(runs["params.seed"], runs["run_id"], runs["artifact_uri"], strict=True):
            if int(s) == seed:
                return pd.Series({"run_id": rid, "artifact_uri": uri})
        raise IndexError(f"{self.label}: no run of seed {seed}")

    def first(self) -> pd.Series | None:
        """The run of the smallest seed: what one-run artifacts (ROC, error pairs) are read from."""
        return self.runs.iloc[0] if self.ok else None

    def missing(self) -> list[tuple[dict, str]]:
        """(trial, reason) of the trials without a FINISHED run: failed, stopped, or half-written."""
        done = set(self.runs["run_id"]) if self.ok else set()
        out = []
        for t in self.trials:
            if t.get("run_id") in done:
                continue
            status = str(t.get("status") or "")
            why = str(t.get("error") or "").strip()
            if status.startswith("FINISHED"):  # trials.json says so, the store does not: not counted
                why = why or "its run is not FINISHED in the store"
            out.append((t, " ".join(why.split()) or status or "no run"))
        return out

    # --- numbers --------------------------------------------------------------------------

    def values(self, metric: str) -> list[float]:
        col = f"metrics.{metric}"
        return [float(x) for x in self.runs[col]] if col in self.runs else []

    def mean(self, metric: str) -> float:
        v = [x for x in self.values(metric) if not np.isnan(x)]
        return float(np.mean(v)) if v else float("nan")

    def macro(self, prefix: str, metric: str = "auc") -> float:
        """`<prefix>/<task>/<metric>`, mean over the tasks, then over seeds."""
        v = [x for x in (self.mean(f"{prefix}/{t}/{metric}") for t in self.tasks) if not np.isnan(x)]
        return float(np.mean(v)) if v else float("nan")

    @property
    def val(self) -> float:
        """Validation macro AUC of the restored checkpoint: what the phased studies select on."""
        return self.macro("best_dev")

    @property
    def test(self) -> float:
        return self.macro("test")

    # --- settings -------------------------------------------------------------------------

    @property
    def point(self) -> dict:
        return (self.trials[0].get("point") or {}) if self.trials else {}

    def tag(self, name: str) -> str:
        col = f"tags.{name}"
        return str(self.runs[col].iloc[0]) if col in self.runs else "?"

    def param(self, name: str) -> str:
        """A flattened-config param of the runs, else the trial's search point, else ''."""
        col = f"params.{name}"
        if self.ok and col in self.runs and self.runs[col].notna().any():
            return str(self.runs[col].dropna().iloc[0])
        v = self.point.get(name)
        return "" if v is None else str(v)

    def num(self, name: str) -> float:
        try:
            return float(self.param(name))
        except ValueError:
            return float("nan")

    @property
    def kd(self) -> bool:
        loss = self.param("loss.name")
        return loss != "none" if loss else self.phase != "baseline"

    @property
    def backbone(self) -> str:
        return self.param("student.vision.name")  # '' when a failed trial's point does not name it

    @property
    def attention(self) -> str:
        return self.param("student.vision.attention")

    def describe(self) -> str:
        text = f"`{self.exp_id}` ({self.backbone or '?'}, attention {self.attention or '?'}"
        if self.kd:
            text += f", τ={self.num('loss.temperature'):g}, α={self.num('loss.alpha'):g}"
        return text + ")"

    # --- cells ----------------------------------------------------------------------------

    def cell(self, metric: str, digits: int = 4) -> str:
        return mean_std(self.values(metric), digits) + self.short()

    def short(self) -> str:
        """' (1 of 2 seeds)' when the configuration FINISHED fewer seeds than the study asked."""
        n = len(self.runs)
        return f" ({n} of {self.asked} seeds)" if n < self.asked else ""

    @property
    def name(self) -> str:
        names = sorted(self.runs["tags.mlflow.runName"].astype(str))
        base = re.sub(r"-s\d+$", "", names[0])
        return names[0] if len(names) == 1 else f"{base} ({len(names)} seeds)"

    def latency(self) -> str:
        med, p90 = self.values("latency_ms"), self.values("latency_p90_ms")
        if len(med) == 1:
            one = f"{fmt(med[0], 2)} (p90 {fmt(p90[0], 2)})" if p90 else fmt(med[0], 2)
            return one + self.short()
        return mean_std(med, 2) + self.short()


def configs(sweep: Sweep) -> list[Group]:
    """A flat sweep's configurations (trial labels without the seed), best dev metric on the
    matched seeds first, then by label; unranked (by label) when no seed was FINISHED by all."""
    label_of = {t["run_id"]: re.sub(r"\s*seed=\d+$", "", t["label"]) for t in sweep.trials if t.get("run_id")}
    runs = sweep.runs
    if runs.empty:
        return []
    runs = runs.assign(_label=[label_of.get(r, r) for r in runs["run_id"]])
    out = [Group(label, group.sort_values("run_id")) for label, group in runs.groupby("_label", sort=True)]
    matched = set.intersection(*(set(c.seeds) for c in out))
    asked = max(len(sweep.seeds), max(len(c.runs) for c in out))
    for c in out:
        c.asked, c.matched = asked, tuple(sorted(matched))
    return sorted(out, key=lambda c: (-np.nan_to_num(c.fair.mean("best_dev/avg_f1"), nan=-1.0), c.label))


def comparable(cs: list[Group]) -> bool:
    """True when some seed was FINISHED by every configuration: they can be ranked and compared."""
    return bool(cs) and bool(cs[0].matched)


@dataclass
class Folds:
    """One configuration over cross-validation folds: a `Group` per fold, by fold (each the mean
    over its seeds). Per-fold numbers pair configurations validated on the same held-out folds."""

    key: str  # the phase (or another name of the configuration)
    groups: list[Group]

    def per_fold(self, metric: str | Callable[[Group], float]) -> dict[int, float]:
        """{fold: value} over the folds with a FINISHED run and a number; `metric` is a metric
        name (mean over seeds) or a function of the fold's group (e.g. its `val`)."""
        value = metric if callable(metric) else (lambda g: g.mean(metric))
        out = {}
        for g in self.groups:
            v = value(g)
            if g.ok and not math.isnan(v):
                out[g.fold if g.fold is not None else 0] = v
        return out

    def values(self, metric: str | Callable[[Group], float]) -> list[float]:
        return list(self.per_fold(metric).values())

    def mean(self, metric: str | Callable[[Group], float]) -> float:
        v = self.values(metric)
        return float(np.mean(v)) if v else float("nan")

    def runs_max(self, metric: str) -> float:
        """The largest value of `metric` over every run of every fold."""
        v = [x for g in self.groups if g.ok for x in g.values(metric) if not math.isnan(x)]
        return max(v) if v else float("nan")

    def param(self, name: str) -> str:
        return next((g.param(name) for g in self.groups if g.ok), "") or (
            self.groups[0].param(name) if self.groups else ""
        )
