"""The one place the report stage reads the run database (through pipeline.tracking, in bulk).

A sweep is a FINISHED parent run (tag stage=sweep) with a `trials.json` artifact listing every
configuration and its run or error. By default the latest sweep per (study, dataset) is
reported; `sweep_id` picks another for its (study, dataset).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import pandas as pd

from pipeline import tracking


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


def _ids_filter(ids: list[str]) -> str:
    return "attributes.run_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"


def runs_by_id(ids: list[str]) -> pd.DataFrame:
    """Runs by id, 100 ids per search request."""
    ids = sorted(set(ids))
    frames = [tracking.runs_frame(_ids_filter(ids[i : i + 100])) for i in range(0, len(ids), 100)]
    frames = [f for f in frames if not f.empty]
    return (
        pd.concat(frames, ignore_index=True).sort_values("run_id", ignore_index=True)
        if frames
        else pd.DataFrame()
    )


def sweeps(sweep_id: str | None = None) -> list[Sweep]:
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
        text = tracking.read_text(p["run_id"], "trials.json")
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


def predictions(run_id: str) -> pd.DataFrame | None:
    text = tracking.read_text(run_id, "predictions/test.csv")
    return None if text is None else pd.read_csv(io.StringIO(text))
