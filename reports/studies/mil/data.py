"""The dual-stream MIL loss study (seed 002) as the report reads it: options, folds, stability.

The study driver runs each configuration as one phase (`ce_weighted`, `focal`, `ldam_drw`: the
seed's three loss options; `kd`: bag-level distillation, a fourth configuration) with k-fold
patient-level cross-validation over train+dev and the test set held out. trials.json lists one
entry per phase, fold and seed. A fold of an option is its runs over seeds (numbers: mean over
seeds). Stability comes from each run's `stability/*` metrics; a run without them gets what its
per-epoch history can give. Every choice is on validation AUC; test never chooses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np
import pandas as pd

from reports.groups import Folds, Group
from reports.phased import Study
from reports.phased import load as load_study
from reports.query import Sweep, histories, run_text, runs_by_id
from reports.stats import Diff, fmt, paired_folds

OPTIONS = ("ldam_drw", "focal", "ce_weighted")  # the seed's Options 1, 2, 3, in its order
KD = "kd"
TITLES = {
    "ldam_drw": "LDAM + DRW",
    "focal": "Focal Loss",
    "ce_weighted": "CrossEntropyLoss + WeightedRandomSampler",
    "kd": "Bag-level KD: CE + WeightedRandomSampler with vanilla KD from a larger MIL teacher",
}
SHORT = {"ldam_drw": "LDAM + DRW", "focal": "Focal", "ce_weighted": "CE + WRS", "kd": "KD"}
PREFERENCE = ("ce_weighted", "focal", "ldam_drw")  # equal mean validation AUC: the simpler option

# The stability rule (seed 002's symptoms, in numbers)
LOSS_MIN = 0.001  # "loss collapsing to ≈ 0.001"
LOSS_MAX = 100.0  # "or exploding (> 100)"
# "validation AUC fluctuating 0.30-0.90 across consecutive epochs": a swing falls as well as rises,
# and a rise alone is a learning curve, so the rule is on the largest fall between two epochs
MAX_DROP = 0.3
MAX_UNSTABLE_FOLDS = 1  # an option is stable with at most this many unstable folds
LEVEL = 0.95  # of the paired t-interval over folds
SUMMARY_KEYS = ("auc", "accuracy", "balanced_accuracy", "f1", "sensitivity", "specificity")
NAN = float("nan")


def num(x: float) -> str:
    """A loss value: 4 significant digits (0.0005, 150), n/a when not recorded."""
    return "n/a" if math.isnan(x) else f"{x:.4g}"


@dataclass
class Evidence:
    """The stability numbers of one FINISHED run; NaN where neither metric nor history has them."""

    epochs: float
    jump: float  # max |dev AUC(e) - dev AUC(e-1)| (shown, not a rule: a rise is learning)
    drop: float  # max (dev AUC(e-1) - dev AUC(e)), at least 0
    std_half: float  # std of dev AUC over the last half of the epochs
    loss_min: float
    loss_max: float
    collapsed: float  # epochs where every dev bag was predicted as one class (all epochs)
    nonfinite: float
    derived: tuple[str, ...] = ()  # numbers computed from the per-epoch history, not logged

    def tripped(self) -> list[str]:
        """The rules this run breaks, each with its number; a NaN compares False (not tripped)."""
        out = ["non-finite loss"] if self.nonfinite == 1 else []
        if self.loss_min < LOSS_MIN:
            out.append(f"train loss min {num(self.loss_min)} < {LOSS_MIN:g}")
        if self.loss_max > LOSS_MAX:
            out.append(f"train loss max {num(self.loss_max)} > {LOSS_MAX:g}")
        if self.drop > MAX_DROP:
            out.append(f"validation AUC fell {fmt(self.drop)} > {MAX_DROP:g} in one epoch")
        if not math.isnan(self.epochs) and self.collapsed > self.epochs // 2:
            out.append(
                f"{self.collapsed:g} collapsed epochs > ⌊{self.epochs:g}/2⌋ = {self.epochs // 2:g} "
                "(at least one in the second half)"
            )
        return out


def evidence(run: pd.Series, dev: dict[int, float], loss: dict[int, float]) -> Evidence:
    """A run's `stability/*` metrics; each one missing is computed from the history if it can be."""
    d, lo = [dev[s] for s in sorted(dev)], [loss[s] for s in sorted(loss)]
    derived = []

    def got(name: str, fallback) -> float:
        v = run.get(f"metrics.stability/{name}")
        v = NAN if v is None else float(v)
        if not math.isnan(v):
            return v
        v = float(fallback())
        if not math.isnan(v):
            derived.append(name)
        return v

    e = Evidence(
        got("epochs", lambda: len(d) or NAN),
        got(
            "max_abs_delta_auc",
            lambda: max(abs(b - a) for a, b in zip(d[:-1], d[1:], strict=True)) if len(d) > 1 else NAN,
        ),
        got(
            "max_auc_drop",
            lambda: max(0.0, *(a - b for a, b in zip(d[:-1], d[1:], strict=True))) if len(d) > 1 else NAN,
        ),
        got("std_auc_last_half", lambda: np.std(d[len(d) // 2 :]) if d else NAN),
        got("train_loss_min", lambda: min(lo) if lo else NAN),
        got("train_loss_max", lambda: max(lo) if lo else NAN),
        got("collapsed_epochs", lambda: NAN),  # not computable from AUC or loss curves
        got("nonfinite", lambda: float(any(not math.isfinite(x) for x in lo)) if lo else NAN),
    )
    e.derived = tuple(derived)
    return e


@dataclass
class Fold:
    """One fold of one option: its runs over seeds and the trials without a FINISHED run."""

    row: Group
    evidence: list[Evidence]  # one per FINISHED run, in seed order
    failures: list[tuple[dict, str]]  # (trial, reason)

    @property
    def fold(self) -> int:
        return self.row.fold if self.row.fold is not None else 0

    @property
    def ok(self) -> bool:
        return self.row.ok

    def reasons(self) -> list[str]:
        """Why the fold is unstable (empty: stable): failed trials first, then tripped rules."""
        out = [f"{t.get('status') or 'no run'}: {why}" for t, why in self.failures]
        for e in self.evidence:
            out += [r for r in e.tripped() if r not in out]
        return out

    @property
    def stable(self) -> bool:
        return not self.reasons()

    def worst(self, attr: str, low: bool = False) -> float:
        """The worst value over seeds (highest, or lowest when `low`)."""
        v = [getattr(e, attr) for e in self.evidence if not math.isnan(getattr(e, attr))]
        return (min(v) if low else max(v)) if v else NAN


VAL = attrgetter("val")  # a fold's validation AUC (restored checkpoint, held-out fold), mean over seeds
TEST = attrgetter("test")  # a fold model's AUC on the held-out test set, mean over seeds


@dataclass
class Option(Folds):
    """One configuration (phase) over its folds, with each fold's stability evidence."""

    pid: str = ""  # the phase's id in phases.json
    folds: list[Fold] = field(default_factory=list)  # by fold; `groups` are their rows

    @property
    def phase(self) -> str:
        return self.key

    @property
    def title(self) -> str:
        return TITLES.get(self.phase, self.phase)

    @property
    def short(self) -> str:
        return SHORT.get(self.phase, self.phase)

    @property
    def unstable(self) -> list[Fold]:
        return [f for f in self.folds if not f.stable]

    @property
    def stable(self) -> bool:
        return any(f.ok for f in self.folds) and len(self.unstable) <= MAX_UNSTABLE_FOLDS


def paired(a: Option, b: Option) -> Diff | None:
    """a - b of validation AUC paired by fold (each fold validates both on the same bags)."""
    return paired_folds(a.per_fold(VAL), b.per_fold(VAL), LEVEL)


@dataclass
class MilStudy:
    study: Study
    task: str
    options: list[Option]  # the seed's options in its order, then KD, then any other phase
    curves: dict[str, dict[int, float]]  # run id -> dev AUC per epoch

    @property
    def sweep(self) -> Sweep:
        return self.study.sweep

    def option(self, phase: str) -> Option | None:
        return next((o for o in self.options if o.phase == phase), None)

    @property
    def candidates(self) -> list[Option]:
        return [o for o in self.options if o.phase in OPTIONS]

    def chosen(self) -> Option | None:
        """The stable loss option with the highest mean validation AUC (ties: PREFERENCE order)."""
        ok = [o for o in self.candidates if o.stable and not math.isnan(o.mean(VAL))]
        ok.sort(key=lambda o: PREFERENCE.index(o.phase))
        return max(ok, key=lambda o: o.mean(VAL), default=None)  # max keeps the first of equals

    def top(self, which: Callable[[Group], float] = TEST) -> Option | None:
        ok = [o for o in self.candidates if not math.isnan(o.mean(which))]
        return max(
            sorted(ok, key=lambda o: PREFERENCE.index(o.phase)), key=lambda o: o.mean(which), default=None
        )


def load(sweep: Sweep) -> MilStudy:
    """The options of one MIL sweep, each fold with the stability evidence of its runs."""
    study = load_study(sweep)
    task = study.tasks[0] if study.tasks else "?"
    runs = sweep.runs
    hist = histories(list(runs["run_id"]), [f"dev/{task}/auc", "train/loss"]) if not runs.empty else {}
    lost = [t["run_id"] for r in study.rows for t, _ in r.missing() if t.get("run_id")]
    bad = runs_by_id(lost) if lost else pd.DataFrame()
    why = {
        r["run_id"]: r["tags.failure_reason"]
        for _, r in bad.iterrows()
        if isinstance(r.get("tags.failure_reason"), str) and r["tags.failure_reason"]
    }
    ids = {p.get("name"): str(p.get("id") or "") for p in study.phases}
    by_phase: dict[str, list[Fold]] = {}
    for row in study.rows:
        ev = [
            evidence(
                r, hist.get((r["run_id"], f"dev/{task}/auc"), {}), hist.get((r["run_id"], "train/loss"), {})
            )
            for _, r in row.runs.iterrows()
        ]
        fails = [(t, " ".join(str(why.get(t.get("run_id"), r)).split())) for t, r in row.missing()]
        by_phase.setdefault(row.phase, []).append(Fold(row, ev, fails))
    order = [p for p in OPTIONS if p in by_phase] + [KD] * (KD in by_phase)
    order += [p for p in by_phase if p not in order]
    options = []
    for p in order:
        folds = sorted(by_phase[p], key=lambda f: f.fold)
        options.append(Option(p, [f.row for f in folds], ids.get(p, ""), folds))
    curves = {rid: h for (rid, key), h in hist.items() if key == f"dev/{task}/auc"}
    return MilStudy(study, task, options, curves)


def fold_metrics(fold: Fold) -> dict:
    """metrics.json of the fold's runs: the numbers of SUMMARY_KEYS averaged over seeds, plus
    `classes` and `positive_class` of the first; {} when no run saved one."""
    got = [run_text(r, "metrics.json") for _, r in fold.row.runs.iterrows()]
    docs = [json.loads(x) for x in got if x]
    if not docs:
        return {}
    out = {
        k: float(np.mean([float(d[k]) for d in docs if d.get(k) is not None] or [NAN])) for k in SUMMARY_KEYS
    }
    return out | {"classes": docs[0].get("classes"), "positive_class": docs[0].get("positive_class")}
