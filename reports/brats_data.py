"""The BraTS models study (seed 002, sweeps/brats.yaml) as the report reads it: one `Model` per phase
(DSMIL, ResNet-3D, Swin-3D, the 3-D-teacher KD configuration) and per ensemble method, each with
its fold rows (reports.xlite_data.Row: the runs of one fold over seeds). Ensemble runs are found
through the parent's ensembles.json."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from reports.query import Sweep, runs_by_id, sweep_text
from reports.stats import FoldDiff, paired_folds
from reports.xlite_data import Row
from reports.xlite_data import load as load_study

TITLES = {
    "dsmil": "DSMIL",
    "resnet3d": "ResNet-3D",
    "swin3d": "Swin-3D",
    "kd_resnet3d_to_dsmil": "DSMIL taught by ResNet-3D (KD)",
    "ensemble_mean": "Ensemble (mean)",
    "ensemble_auc_weighted": "Ensemble (validation-AUC weighted)",
    "ensemble_stacking": "Ensemble (stacking on validation)",
}
LEVEL = 0.95


@dataclass
class Model:
    key: str  # the phase, or ensemble_<method>
    folds: list[Row]  # by fold

    @property
    def title(self) -> str:
        return TITLES.get(self.key, self.key)

    @property
    def ensemble(self) -> bool:
        return self.key.startswith("ensemble_")

    def per_fold(self, metric: str) -> dict[int, float]:
        out = {}
        for r in self.folds:
            v = r.mean(metric)
            if r.ok and not math.isnan(v):
                out[r.fold if r.fold is not None else 0] = v
        return out

    def values(self, metric: str) -> list[float]:
        return list(self.per_fold(metric).values())

    def mean(self, metric: str) -> float:
        v = self.values(metric)
        return float(np.mean(v)) if v else float("nan")

    def runs_max(self, metric: str) -> float:
        v = [x for r in self.folds if r.ok for x in r.values(metric) if not math.isnan(x)]
        return max(v) if v else float("nan")


def paired(a: Model, b: Model, metric: str) -> FoldDiff | None:
    """a - b of `metric` paired by fold, with its 95 % t-interval over the folds."""
    return paired_folds(a.per_fold(metric), b.per_fold(metric), LEVEL)


@dataclass
class BratsStudy:
    sweep: Sweep
    task: str
    models: list[Model]

    def singles(self) -> list[Model]:
        return [m for m in self.models if not m.ensemble]

    def ensembles(self) -> list[Model]:
        return [m for m in self.models if m.ensemble]

    def best(self, models: list[Model]) -> Model | None:
        """The highest mean validation AUC (chosen on validation, never test)."""
        ok = [m for m in models if not math.isnan(m.mean(f"best_dev/{self.task}/auc"))]
        return max(ok, key=lambda m: m.mean(f"best_dev/{self.task}/auc"), default=None)


def load(sweep: Sweep) -> BratsStudy:
    study = load_study(sweep)
    task = study.tasks[0] if study.tasks else "grade"
    by_key: dict[str, list[Row]] = {}
    for row in study.rows:
        by_key.setdefault(row.phase, []).append(row)
    text = sweep_text(sweep, "ensembles.json")
    records = json.loads(text) if text else []
    frame = runs_by_id([r["run_id"] for r in records if r.get("run_id")])
    for rec in records:
        mine = frame[frame["run_id"] == rec.get("run_id")] if not frame.empty else frame
        trial = {"run_id": rec.get("run_id"), "status": rec.get("status"), "label": rec.get("method")}
        key = f"ensemble_{rec['method']}"
        by_key.setdefault(key, []).append(
            Row(key, rec["method"], rec.get("fold"), [trial], mine.reset_index(drop=True), [task])
        )
    models = [Model(k, sorted(v, key=lambda r: r.fold or 0)) for k, v in by_key.items()]
    return BratsStudy(sweep, task, models)
