"""The one place the report stage reads the run database (through pipeline.tracking, in bulk).

A sweep is a FINISHED parent run (tag stage=sweep) with a `trials.json` artifact listing every
configuration and its run or error. By default the latest sweep per (study, dataset) is
reported; `sweep_id` picks another for its (study, dataset). Reading writes nothing.
"""

from __future__ import annotations

import ast
import io
import json
import re
from dataclasses import dataclass, field

import pandas as pd

from pipeline import tracking
from reports import artifacts


@dataclass
class Sweep:
    run_id: str
    study: str
    kind: str  # loss, fusion, kd, backbone, other
    dataset: str
    sweep_hash: str
    start_time: str
    trials: list[dict]
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # FINISHED student runs of the sweep
    incomplete: list[dict] = field(default_factory=list)  # FAILED/KILLED runs, failed configurations
    seeds: list[int] = field(default_factory=list)  # the seeds the study asked for


def _asked_seeds(parent: pd.Series, trials: list[dict], runs: pd.DataFrame) -> list[int]:
    """The parent's `seeds` param ("[0, 1]"); for sweeps without it, every seed its trials name."""
    given = parent.get("params.seeds")
    if isinstance(given, str) and given.strip():
        try:
            return sorted(int(s) for s in ast.literal_eval(given))
        except (ValueError, SyntaxError, TypeError):
            pass
    seeds = {int(m) for t in trials for m in re.findall(r"\bseed=(\d+)", str(t.get("label", "")))}
    if "params.seed" in runs:
        seeds |= {int(s) for s in runs["params.seed"].dropna()}
    return sorted(seeds)


def _ids_filter(ids: list[str]) -> str:
    return "attributes.run_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"


def runs_by_id(ids: list[str]) -> pd.DataFrame:
    """Runs by id, 100 ids per search request; missing ids (NaN, empty: an untagged run) are skipped."""
    ids = sorted({i for i in ids if isinstance(i, str) and i})
    frames = [tracking.runs_frame(_ids_filter(ids[i : i + 100])) for i in range(0, len(ids), 100)]
    frames = [f for f in frames if not f.empty]
    return (
        pd.concat(frames, ignore_index=True).sort_values("run_id", ignore_index=True)
        if frames
        else pd.DataFrame()
    )


def sweeps(sweep_id: str | None = None) -> list[Sweep]:
    _PREDICTIONS.clear()  # a new build may read another (or a moved) store
    parents = tracking.runs_frame("tags.stage = 'sweep' and attributes.status = 'FINISHED'")
    if parents.empty:
        return []
    parents = parents.sort_values(["start_time", "run_id"])  # oldest first: later ones win
    chosen: dict[tuple[str, str], pd.Series] = {}
    pinned: set[tuple[str, str]] = set()
    for _, p in parents.iterrows():
        key = (p["tags.study"], p["tags.dataset"])
        if p["run_id"] == sweep_id:
            chosen[key] = p
            pinned.add(key)
        elif key not in pinned:
            chosen[key] = p
    # runs that did not finish, of every sweep, in one search (few rows; status is a column)
    unfinished = tracking.runs_frame("attributes.status != 'FINISHED'")
    out = []
    for (study, dataset), p in sorted(chosen.items()):
        text = artifacts.read_text(p["run_id"], p["artifact_uri"], "trials.json")
        if text is None:
            continue
        trials = json.loads(text)
        sweep = Sweep(
            p["run_id"],
            study,
            p.get("tags.study_kind") or "other",
            dataset,
            p["tags.sweep_hash"],
            str(p["start_time"])[:19],
            trials,
        )
        finished = [t["run_id"] for t in trials if t.get("run_id") and t["status"].startswith("FINISHED")]
        runs = runs_by_id(finished)
        sweep.runs = runs[runs["status"] == "FINISHED"].reset_index(drop=True) if not runs.empty else runs
        sweep.seeds = _asked_seeds(p, trials, sweep.runs)
        bad = (
            unfinished[unfinished["tags.sweep_hash"] == p["tags.sweep_hash"]]
            if "tags.sweep_hash" in unfinished
            else unfinished.iloc[0:0]
        )
        done_labels = {t["label"] for t in trials if t["status"].startswith("FINISHED")}
        sweep.incomplete = [
            {
                "what": r.get("tags.mlflow.runName", ""),
                "status": r["status"],
                "reason": r.get("tags.failure_reason", "") or "",
            }
            for _, r in (bad.sort_values("run_id").iterrows() if not bad.empty else [])
        ] + [
            {"what": t["label"], "status": "no FINISHED run", "reason": t.get("error") or ""}
            for t in trials
            if t["label"] not in done_labels
        ]
        out.append(sweep)
    return out


_PREDICTIONS: dict[str, pd.DataFrame | None] = {}  # per build (cleared by `sweeps`): each pair reuses them


def predictions(run: pd.Series) -> pd.DataFrame | None:
    """The saved test predictions of a run (a row of a runs frame), or None."""
    rid = run["run_id"]
    if rid not in _PREDICTIONS:
        text = artifacts.read_text(rid, run["artifact_uri"], "predictions/test.csv")
        _PREDICTIONS[rid] = None if text is None else pd.read_csv(io.StringIO(text))
    return _PREDICTIONS[rid]


def histories(run_ids: list[str], keys: list[str]) -> dict[tuple[str, str], dict[int, float]]:
    """Per-epoch values {(run_id, key): {step: value}} of metrics logged with step=epoch."""
    c = tracking.client()
    out = {}
    for rid in sorted(set(run_ids)):
        for key in keys:
            points = c.get_metric_history(rid, key)
            if points:  # several values at one step: the last logged wins, as in the MLflow UI
                out[rid, key] = {m.step: m.value for m in sorted(points, key=lambda m: (m.step, m.timestamp))}
    return out


def run_text(run: pd.Series, path: str) -> str | None:
    """A text artifact of a run (a row of a runs frame), or None when it is missing."""
    return artifacts.read_text(run["run_id"], run["artifact_uri"], path)


def sweep_text(sweep: Sweep, path: str) -> str | None:
    """A text artifact of the sweep's parent run besides trials.json (e.g. phases.json), or None."""
    parent = runs_by_id([sweep.run_id])
    return None if parent.empty else run_text(parent.iloc[0], path)
