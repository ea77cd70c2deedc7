"""A study in phases (X-Lite, MIL, BraTS) as the report reads it: phases, experiments and their
runs, one `Group` per (phase, experiment id, fold).

The study driver writes, on the sweep's parent run, `trials.json` (one entry per phase,
experiment id, seed and fold) and `phases.json` (phases in run order, each with the phases it
picked its configuration from, `best_of`, and the pick, `chosen`). A configuration that appears
in several phases keeps one run (it is not re-run), so phase membership is read from the
trials, never from run tags. Selection is on validation only: `Group.val` (the restored
checkpoint's validation macro AUC, the selection metric); test numbers are reported, never
used to choose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reports.groups import Group, tasks
from reports.query import Sweep, sweep_text

KD_PHASES = ("distillation", "sensitivity_tau", "sensitivity_alpha")
SELECTION_PHASES = ("baseline", *KD_PHASES)  # where X-Lite's configurations compete on validation


def _fold(trial: dict) -> int | None:
    f = trial.get("fold")
    return None if f is None or f == "" else int(f)


@dataclass
class Study:
    sweep: Sweep
    tasks: list[str]
    rows: list[Group]  # run order: phases as in phases.json, experiments as in trials.json
    phases: list[dict] = field(default_factory=list)

    def phase(self, name: str) -> list[Group]:
        return [r for r in self.rows if r.phase == name]

    def best(self, phases: tuple[str, ...] | list[str]) -> Group | None:
        """The highest validation AUC among the completed rows of `phases` (first of equals)."""
        done = [r for r in self.rows if r.phase in phases and r.ok and not np.isnan(r.val)]
        return max(done, key=lambda r: r.val, default=None)  # max keeps the first of equals

    def top_test(self, rows: list[Group]) -> Group | None:
        done = [r for r in rows if r.ok and not np.isnan(r.test)]
        return max(done, key=lambda r: r.test, default=None)

    def chosen(self, phase: str) -> tuple[dict, Group | None] | None:
        """(phases.json `chosen` entry of `phase`, its row) or None when the phase chose nothing.
        The row: the experiment id in a phase of `best_of`, else any row with the same runs."""
        entry = next((p for p in self.phases if p.get("name") == phase), None)
        pick = (entry or {}).get("chosen")
        if not pick:
            return None
        ids = frozenset(pick.get("run_ids") or [])
        where = list((entry or {}).get("best_of") or []) or [r.phase for r in self.rows]
        match = [r for r in self.rows if r.exp_id == pick.get("exp_id") and r.phase in where]
        match = match or [r for r in self.rows if ids and r.run_ids == ids]
        return pick, (match[0] if match else None)

    def selected(self) -> tuple[Group | None, str]:
        """(the configuration chosen on validation for the final model, how it is known)."""
        for phase in ("final", "cv"):
            got = self.chosen(phase)
            if got and got[1] is not None:
                return got[1], f"phases.json: chosen for `{phase}`"
        best = self.best(SELECTION_PHASES)
        return best, "the best validation AUC of the baseline, distillation and sensitivity phases"

    def selector_runs(self) -> pd.DataFrame:
        """The runs that selected the final configuration (their validation is not in-sample)."""
        got = self.chosen("final")
        runs = self.sweep.runs
        if got and got[0].get("run_ids") and not runs.empty:
            picked = runs[runs["run_id"].isin(list(got[0]["run_ids"]))]
            if not picked.empty:
                return picked.sort_values("run_id", ignore_index=True)
        row = self.selected()[0]
        return row.runs if row is not None else pd.DataFrame()


def load(sweep: Sweep) -> Study:
    """The study of one phased sweep: trials grouped by (phase, experiment id, fold)."""
    text = sweep_text(sweep, "phases.json")
    phases = json.loads(text) if text else []
    order = [p["name"] for p in phases]
    order += [t["phase"] for t in sweep.trials if t.get("phase") and t["phase"] not in order]
    order = list(dict.fromkeys(order))
    groups: dict[tuple[str, str, int | None], list[dict]] = {}
    for t in sweep.trials:
        groups.setdefault((t.get("phase") or "?", t.get("exp_id") or t["label"], _fold(t)), []).append(t)
    ts = tasks(sweep) if not sweep.runs.empty else []
    runs = sweep.runs
    rows = []
    for (phase, exp_id, fold), trials in groups.items():
        ids = [t["run_id"] for t in trials if t.get("run_id")]
        mine = runs[runs["run_id"].isin(ids)] if not runs.empty else runs
        if not mine.empty and "params.seed" in mine:
            mine = mine.assign(_s=mine["params.seed"].astype(int)).sort_values(["_s", "run_id"])
            mine = mine.drop(columns="_s").reset_index(drop=True)
        rows.append(Group(exp_id, mine, phase=phase, exp_id=exp_id, fold=fold, trials=trials, tasks=ts))
    rank = {p: i for i, p in enumerate(order)}
    rows.sort(key=lambda r: rank.get(r.phase, len(rank)))  # stable: trials.json order inside a phase
    return Study(sweep, ts, rows, phases)


def latest(found: list[Sweep], sweep_id: str | None = None) -> list[Sweep]:
    """One sweep per dataset: the one `sweep_id` names, else the latest started."""
    out: dict[str, Sweep] = {}
    for s in sorted(found, key=lambda s: (s.start_time, s.run_id)):
        if out.get(s.dataset) is None or out[s.dataset].run_id != sweep_id:
            out[s.dataset] = s
    return [out[d] for d in sorted(out)]
