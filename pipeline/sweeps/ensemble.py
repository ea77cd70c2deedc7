"""A study's ensembles (`ensemble:` in the study file; seed 002's "ensemble fusion", issue 17): after
the phases, the `members` phases' FINISHED runs of each seed and fold are combined by each method
of pipeline.training.ensemble, from the predictions the members saved (predictions/dev.csv and
test.csv), never refitted and never fitted on test.

Each (method, seed, fold) is its own MLflow run under the sweep's parent: stage `ensemble`, tags
`method`, `seed`, `fold`, `members` (the member run ids) and `member_phases`, the members'
predictions as its dataset inputs (context `member`), metrics under the members' names
(`best_dev/...`, `dev/...`, `test/...`), the same metrics.json keys and predictions files. A
resumed sweep finds a FINISHED ensemble run of the same members and method and does not redo it.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline import tracking
from pipeline.config.names import ensemble_name
from pipeline.sweeps.batch import Context, Row

Say = Callable[[str], None]


@dataclass
class Member:
    phase: str
    run_id: str
    dev: object  # pandas frames of predictions/dev.csv and test.csv
    test: object


def _predictions(run_id: str, split: str):
    import pandas as pd

    text = tracking.read_text(run_id, f"predictions/{split}.csv")
    if text is None:
        raise ValueError(f"run {run_id} saved no predictions/{split}.csv: it cannot join an ensemble")
    return pd.read_csv(io.StringIO(text))


def _probs(frame, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cols = [c for c in frame.columns if c.startswith(f"{task}/p/")]
    return frame[cols].to_numpy(float), frame[f"{task}/label"].to_numpy(int), frame["index"].to_numpy(int)


def _groups(study, rows: Sequence[Row]) -> list[tuple[int, int, list[Row]]]:
    """(seed, fold, the member rows in `members` order) for each seed and fold every member has."""
    done = {(r.phase, r.seed, r.fold): r for r in rows if r.status.startswith("FINISHED") and r.run_id}
    first = study.ensemble.members[0]
    keys = sorted({(s, f) for (p, s, f) in done if p == first and f is not None})
    out = []
    for seed, fold in keys:
        members = [done.get((m, seed, fold)) for m in study.ensemble.members]
        if all(members):
            out.append((seed, fold, members))
    return out


def run(ctx: Context, rows: Sequence[Row], say: Say = print) -> list[dict]:
    """Every method on every complete (seed, fold); returns one record per ensemble run."""
    from pipeline.training.ensemble import combine
    from tasks import TASK_KINDS
    from tasks.base import Predictions

    study = ctx.study
    records = []
    cache: dict[str, Member] = {}
    groups = _groups(study, rows)
    if not groups:
        say("ensemble: no seed and fold where every member FINISHED: no ensemble run")
    for seed, fold, members in groups:
        for r in members:
            if r.run_id not in cache:
                cache[r.run_id] = Member(
                    r.phase, r.run_id, _predictions(r.run_id, "dev"), _predictions(r.run_id, "test")
                )
        ms = [cache[r.run_id] for r in members]
        maps = json.loads(tracking.read_text(ms[0].run_id, "label_maps.json") or "{}")
        (task,) = list(maps)
        kind = TASK_KINDS.get("multiclass")(maps)
        dev = [_probs(m.dev, task) for m in ms]
        test = [_probs(m.test, task) for m in ms]
        for split, parts in (("dev", dev), ("test", test)):
            if any(
                not np.array_equal(p[1], parts[0][1]) or not np.array_equal(p[2], parts[0][2]) for p in parts
            ):
                raise ValueError(
                    f"ensemble fold {fold}: the members' {split} predictions are not on the same patients"
                )
        ids = ",".join(m.run_id for m in ms)
        for method in study.ensemble.methods:
            tags = {
                "stage": "ensemble",
                "sweep_hash": ctx.sweep_hash,
                "method": method,
                "seed": str(seed),
                "fold": str(fold),
                "members": ids,
            }
            found = tracking.find_finished(ctx.experiment, tags)
            if found:
                records.append(
                    {
                        "method": method,
                        "seed": seed,
                        "fold": fold,
                        "run_id": found,
                        "status": "FINISHED earlier",
                    }
                )
                continue
            try:
                dev_p, test_p = combine(method, [p[0] for p in dev], [p[0] for p in test], dev[0][1], seed)
            except ValueError as e:  # e.g. a fold's dev too small to fit a stacker: said, not fatal
                say(f"ensemble {method} fold {fold}: not computed: {e}")
                records.append(
                    {"method": method, "seed": seed, "fold": fold, "run_id": None, "status": f"skipped: {e}"}
                )
                continue
            preds = {
                split: Predictions({task: p}, {task: parts[0][1]}, parts[0][2])
                for split, p, parts in (("dev", dev_p, dev), ("test", test_p, test))
            }
            dev_values, _ = kind.metrics(preds["dev"])
            test_values, extras = kind.metrics(preds["test"])
            name = ensemble_name(method, seed, fold)
            member_phases = json.dumps({m.phase: m.run_id for m in ms})
            with tracking.run(
                ctx.experiment, name, {**tags, "member_phases": member_phases}, ctx.parent_id
            ) as log:
                log.metrics({f"best_dev/{k}": v for k, v in dev_values.items()})
                log.metrics({f"dev/{k}": v for k, v in dev_values.items()})
                log.metrics({f"test/{k}": v for k, v in test_values.items()})
                log.text(kind.predictions_csv(preds["dev"]), "predictions/dev.csv")
                log.text(kind.predictions_csv(preds["test"]), "predictions/test.csv")
                log.text(
                    json.dumps(kind.summary(test_values, extras), indent=1, default=float), "metrics.json"
                )
                log.members({m.phase: m.run_id for m in ms}, {m.run_id: _digest(m) for m in ms})
                log.describe(
                    f"ensemble ({method}) of {', '.join(m.phase for m in ms)}; seed {seed}; fold {fold}\n\n"
                    f"dev {task}/auc **{dev_values[f'{task}/auc']:.4f}**, test {task}/auc **{test_values[f'{task}/auc']:.4f}**"
                )
                run_id = log.run_id
            records.append(
                {"method": method, "seed": seed, "fold": fold, "run_id": run_id, "status": "FINISHED"}
            )
            say(
                f"ensemble {method} fold {fold}: dev {task}/auc {dev_values[f'{task}/auc']:.4f}, "
                f"test {test_values[f'{task}/auc']:.4f} (members {', '.join(m.phase for m in ms)})"
            )
    return records


def _digest(m: Member) -> str:
    h = hashlib.sha256(m.dev.to_csv(index=False).encode())
    h.update(m.test.to_csv(index=False).encode())
    return h.hexdigest()[:16]
