"""The one place the report stage reads the run database (through pipeline.tracking, in bulk).

A sweep is a FINISHED parent run (tag stage=sweep) with a `trials.json` artifact listing every
configuration and its run or error. By default the latest sweep per (study, dataset) is
reported; `sweep_id` picks another for its (study, dataset). Reading writes nothing to the store
(over HTTP, a local snapshot of ended runs in the cache: pipeline.tracking.snapshot).

Runs come as frames shaped like `mlflow.search_runs(output_format="pandas")` (run_id, status,
artifact_uri, start_time, metrics.*, params.*, tags.*), whichever reader fills them: "sql"
(MLflow's tables of a SQL store, read directly), "rest" (a tracking server's REST API, with a
local snapshot of ended runs) or "mlflow" (the client); `sweeps(via=...)` picks it for the whole
build, "auto" the fast one where it can.
"""

from __future__ import annotations

import ast
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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
    artifact_uri: str = ""  # the parent run's, for its other artifacts (sweep_text)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # FINISHED student runs of the sweep
    incomplete: list[dict] = field(default_factory=list)  # FAILED/KILLED runs, failed configurations
    seeds: list[int] = field(default_factory=list)  # the seeds the study asked for
    search: str = ""  # the study's search algorithm (grid, random, optuna; "" before it was logged)


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


_READER = [tracking.Reader()]  # the reads of the current build, a new one from each `sweeps`


def frame(records: list[dict]) -> pd.DataFrame:
    """Run records (tracking.Reader.runs) as mlflow.search_runs would give them, rows by run_id
    and columns sorted, each cell the same value (a param or tag a run lacks is NaN, a metric
    NaN). One difference, for speed: params and tags are object columns, not pandas' string
    dtype, which keeps one block per column: a real run's ~150 of them made every row selection
    (a configuration's runs, a seed's run) copy ~150 arrays, seconds over a report."""
    records = sorted(records, key=lambda r: r["run_id"])
    cols: dict[str, Any] = {k: [r[k] for r in records] for k in ("run_id", "experiment_id", "status")}
    cols["artifact_uri"] = [r["artifact_uri"] for r in records]
    for k in ("start_time", "end_time"):  # the conversion mlflow.search_runs makes, run by run,
        ms = [r[k] for r in records]  # at once where every run has the time (the same column)
        whole = ms and None not in ms
        cols[k] = (
            pd.to_datetime(pd.array(ms, dtype="Int64"), unit="ms", utc=True)
            if whole
            else [pd.to_datetime(t, unit="ms", utc=True) for t in ms]
        )
    for key in sorted({k for r in records for k in r["metrics"]}):
        cols[f"metrics.{key}"] = [r["metrics"].get(key, np.nan) for r in records]
    for kind in ("params", "tags"):
        for key in sorted({k for r in records for k in r[kind]}):
            values = [r[kind].get(key, np.nan) for r in records]
            cols[f"{kind}.{key}"] = pd.Series([np.nan if v is None else v for v in values], dtype=object)
    return pd.DataFrame(cols)


def runs_by_id(ids: list[str]) -> pd.DataFrame:
    """Runs by id, 100 ids per search request; missing ids (NaN, empty: an untagged run) are skipped.
    One frame per 100 ids, concatenated, over both readers: a param that a whole block lacks is
    NaN there, not None, as it always was (results.csv prints what it gets)."""
    ids = sorted({i for i in ids if isinstance(i, str) and i})
    frames = [frame(_READER[0].runs(ids[i : i + 100])) for i in range(0, len(ids), 100)]
    frames = [f for f in frames if not f.empty]
    return (
        pd.concat(frames, ignore_index=True).sort_values("run_id", ignore_index=True)
        if frames
        else pd.DataFrame()
    )


def sweeps(sweep_id: str | None = None, via: str = "auto") -> list[Sweep]:
    """The reported sweeps; `via` names the reader of the whole build ("auto", "sql", "rest",
    "mlflow")."""
    _PREDICTIONS.clear()  # a new build may read another (or a moved) store
    finish()
    _READER[0] = tracking.Reader(via)
    parents = frame(_READER[0].runs(tags={"stage": "sweep"}, status="FINISHED"))
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
    unfinished = frame(_READER[0].runs(not_status="FINISHED"))
    listed = {
        key: artifacts.read_text(p["run_id"], p["artifact_uri"], "trials.json") for key, p in chosen.items()
    }
    listed = {key: json.loads(text) for key, text in listed.items() if text is not None}
    # every reported sweep's runs at once (over HTTP: a few requests, not a search per sweep)
    _READER[0].prefetch([t["run_id"] for ts in listed.values() for t in ts if _finished(t)])
    out = []
    for (study, dataset), p in sorted(chosen.items()):
        if (study, dataset) not in listed:
            continue
        trials = listed[study, dataset]
        sweep = Sweep(
            p["run_id"],
            study,
            p.get("tags.study_kind") or "other",
            dataset,
            p["tags.sweep_hash"],
            str(p["start_time"])[:19],
            trials,
            p["artifact_uri"],
            search=p["params.search"] if isinstance(p.get("params.search"), str) else "",
        )
        finished = [t["run_id"] for t in trials if _finished(t)]
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


def _finished(trial: dict) -> bool:
    return (
        isinstance(trial.get("run_id"), str)
        and bool(trial["run_id"])
        and trial["status"].startswith("FINISHED")
    )


def finish() -> None:
    """The build is over: its reader keeps what it read for the next one (over HTTP, the
    snapshot of ended runs; see pipeline.tracking.served)."""
    _READER[0].close()


# per build (cleared by `sweeps`): each pair reuses them
_PREDICTIONS: dict[tuple[str, str], pd.DataFrame | None] = {}


def predictions(run: pd.Series, path: str = "predictions/test.csv") -> pd.DataFrame | None:
    """Saved predictions of a run (a row of a runs frame), or None: its test predictions, or
    those of another file in the same layout (predictions/perturbed/<name>.csv)."""
    key = (run["run_id"], path)
    if key not in _PREDICTIONS:
        text = artifacts.read_text(run["run_id"], run["artifact_uri"], path)
        _PREDICTIONS[key] = None if text is None else pd.read_csv(io.StringIO(text))
    return _PREDICTIONS[key]


def histories(run_ids: list[str], keys: list[str]) -> dict[tuple[str, str], dict[int, float]]:
    """Per-epoch values {(run_id, key): {step: value}} of metrics logged with step=epoch."""
    got = _READER[0].histories(run_ids, keys)
    # several values at one step: the last logged wins, as in the MLflow UI
    return {
        (rid, k): {step: v for step, _, v in sorted(got[rid, k], key=lambda p: (p[0], p[1]))}
        for rid in sorted(set(run_ids))
        for k in keys
        if (rid, k) in got
    }


def run_text(run: pd.Series, path: str) -> str | None:
    """A text artifact of a run (a row of a runs frame), or None when it is missing."""
    return artifacts.read_text(run["run_id"], run["artifact_uri"], path)


def sweep_text(sweep: Sweep, path: str) -> str | None:
    """A text artifact of the sweep's parent run besides trials.json (e.g. phases.json), or None."""
    return artifacts.read_text(sweep.run_id, sweep.artifact_uri, path)
