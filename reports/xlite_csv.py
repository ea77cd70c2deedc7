"""docs/xlite_results.csv: the X-Lite study's results in the seed's own results.csv columns.

One row per (phase, experiment id, fold) of the latest X-Lite sweep per dataset, in run order.
Several seeds: the row holds the mean over the experiment's FINISHED seeds (as the driver's
selection does) and `notes` names them; a seed without a FINISHED run is named with its reason.
No run FINISHED: `status` failed, the metric cells empty, the reason in `notes`.

Columns, where they need saying: `experiment_id` as in trials.json (every fold of a
cross-validation shares it; `notes` says `fold k of K`); `phase` is the seed's name (baseline,
distillation, sensitivity for both sensitivity_tau and sensitivity_alpha, cv, final);
`cnn_backbone` is the timm name of the student CNN (student.vision.name); kd_temperature and
kd_alpha are N/A without distillation, as in the seed. `date`, `epochs` and `train_loss` mean
what they mean in docs/results.csv: the run's start (ISO 8601, UTC), the epochs run and the mean
training loss of the restored (best validation) epoch. val_* are the restored checkpoint's
validation numbers; for the final refit on train+val they are in-sample, and `notes` says so.
`status` is completed or failed (a trial stopped early is not completed). With more than one
X-Lite dataset reported, `notes` starts with the dataset. No "generated" line in the file (it is
in docs/index.md), so that pandas.read_csv reads it as is.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from reports.query import histories
from reports.results_csv import _epochs, _monitor
from reports.xlite_data import CSV_PHASE, SELECTION_PHASES, Row, Study

COLUMNS = [
    "experiment_id",
    "date",
    "phase",
    "model_name",
    "cnn_backbone",
    "attention_type",
    "kd_temperature",
    "kd_alpha",
    "batch_size",
    "learning_rate",
    "epochs",
    "train_loss",
    "val_auc_macro",
    "val_f1_macro",
    "test_auc_macro",
    "test_f1_macro",
    "inference_time_ms",
    "model_size_mb",
    "status",
    "notes",
]


def _num(x: float, digits: int) -> str:
    return "" if x is None or np.isnan(x) else f"{x:.{digits}f}"


def _kd_value(row: Row, name: str) -> str:
    if not row.kd:
        return "N/A"
    v = row.num(name)
    return "" if np.isnan(v) else str(v)  # 4 -> "4.0", as the seed writes it


def _mean_cells(cells: list[str], digits: int) -> str:
    vals = [float(c) for c in cells if c]
    if not vals:
        return ""
    m = float(np.mean(vals))
    return str(int(m)) if digits == 0 and m.is_integer() else f"{m:.{digits or 1}f}"


def notes(study: Study, row: Row, epoch_notes: list[str]) -> list[str]:
    """Why a row matters or differs: selection, reuse, fold, refit, seeds, failures."""
    out = []
    picked_for = [p["name"] for p in study.phases if (got := study.chosen(p["name"])) and got[1] is row]
    if picked_for:
        out.append("chosen on validation for " + ", ".join(picked_for))
    if row.phase in SELECTION_PHASES and study.best([row.phase]) is row:
        out.append("best on validation of its phase")
    earlier = next((r for r in study.rows if r is not row and r.ok and r.run_ids == row.run_ids), None)
    if row.ok and earlier is not None and study.rows.index(earlier) < study.rows.index(row):
        out.append(f"same run as {earlier.exp_id}")
    elif any(t.get("status") == "FINISHED earlier" for t in row.trials):  # found in the store, not re-run
        out.append("run reused from an earlier sweep")
    if row.fold is not None:
        k = len({r.fold for r in study.phase(row.phase) if r.exp_id == row.exp_id})
        out.append(f"fold {row.fold} of {k}: val is the held-out fold")
    if row.phase == "final" or row.param("split.refit") == "True":
        out.append("val in-sample (refit on train+val)")
    if len(row.seeds) > 1:
        out.append("mean over seeds " + ", ".join(str(s) for s in row.seeds))
    elif row.seeds and len(row.trials) > 1:
        out.append(f"seed {row.seeds[0]} only")
    for t, why in row.missing():
        seed = f"seed {t['seed']} " if t.get("seed") is not None and len(row.trials) > 1 else ""
        out.append(f"{seed}{str(t.get('status') or 'FAILED').lower()}: {why}".replace('"', "'"))
    return out + sorted(set(epoch_notes))


def xlite_csv(studies: list[Study]) -> str:
    """The CSV text; rows in run order per dataset (datasets by name): byte-identical rebuilds."""
    runs = [r for s in studies for row in s.rows for _, r in row.runs.iterrows()]
    hist = histories([r["run_id"] for r in runs], sorted({_monitor(r) for r in runs} | {"train/loss"}))
    out = []
    for study in studies:
        for row in study.rows:
            per_run = [_epochs(r, hist) for _, r in row.runs.iterrows()]
            dates = [pd.Timestamp(t).tz_convert("UTC") for t in row.runs["start_time"]] if row.ok else []
            text = notes(study, row, [n for *_, n in per_run if n])
            if len(studies) > 1:
                text.insert(0, f"dataset {study.sweep.dataset}")
            out.append(
                [
                    row.exp_id,
                    min(dates).isoformat(timespec="seconds") if dates else "",
                    CSV_PHASE.get(row.phase, row.phase),
                    "StudentNet+KD" if row.kd else "StudentNet",
                    row.backbone,
                    row.attention,
                    _kd_value(row, "loss.temperature"),
                    _kd_value(row, "loss.alpha"),
                    row.param("train.batch_size"),
                    row.param("train.lr"),
                    _mean_cells([e for e, *_ in per_run], 0),
                    _mean_cells([loss for _, _, loss, _ in per_run], 4),
                    _num(row.val, 4),
                    _num(row.macro("best_dev", "f1"), 4),
                    _num(row.test, 4),
                    _num(row.macro("test", "f1"), 4),
                    _num(row.mean("latency_ms"), 2),
                    _num(row.mean("size_mb"), 2),
                    "completed" if row.ok else "failed",
                    "; ".join(text),
                ]
            )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    w.writerows(out)
    return buf.getvalue()
