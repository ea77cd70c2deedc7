"""The CSV files of the report: docs/results.csv (every FINISHED student run of the flat and MIL
studies) and docs/xlite_results.csv (the X-Lite study in its seed's own columns). Both are plain
CSVs (pandas.read_csv reads them as is): the "generated" notice is in docs/index.md, not in the
files. Rows are sorted or in run order: rebuilds are byte-identical.

results.csv follows the X-ray study's results.csv template (seed 004) wherever it defines a
column, with these departures, each because the template's column would mis-name what it holds
here: `run_id` (the MLflow run id) replaces `experiment_id`; the student's two backbones replace
`cnn_backbone` (`vision_backbone`, `text_backbone`); `attention_type` holds the fusion module;
`best_epoch` follows `epochs`; `dataset`, `seed`, `loss` and `run_name` come last, then
`parameters` (the student's whole parameter count) and `shrunk` (`vision`, `text`,
`vision+text` or empty: the backbones whose depth or width the config overrode, e.g. the tiny
profile's; their name columns keep the configured names, reports.names).

In both, `epochs` is the number of epochs run (early stopping may end before
train.student_epochs), counted from the per-epoch dev metric; `best_epoch` is the epoch of the
best dev metric, whose checkpoint was restored and tested; `train_loss` is that epoch's mean
training loss. A run without per-epoch metrics leaves these empty rather than guess. `date` is
the run's start in ISO 8601 with its UTC offset.

xlite_results.csv: one row per (phase, experiment id, fold) of the latest X-Lite sweep per
dataset, in run order. Several seeds: the row holds the mean over the experiment's FINISHED seeds
(as the driver's selection does) and `notes` names them; a seed without a FINISHED run is named
with its reason. No run FINISHED: `status` failed, the metric cells empty, the reason in `notes`.
`experiment_id` as in trials.json (every fold of a cross-validation shares it; `notes` says
`fold k of K`); `phase` is the seed's name (baseline, distillation, sensitivity for both
sensitivity_tau and sensitivity_alpha, cv, final) or kd_control (the KD choice at alpha 0);
`cnn_backbone` is the timm name of the student CNN (student.vision.name); kd_temperature and
kd_alpha are N/A without distillation, as in the seed. val_* are the restored checkpoint's
validation numbers; for the final refit on train+val they are in-sample, and `notes` says so.
`status` is completed or failed (a trial stopped early is not completed). With more than one
X-Lite dataset reported, `notes` starts with the dataset.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from reports.groups import Group, tasks
from reports.names import shrunk_parts
from reports.phased import SELECTION_PHASES, Study
from reports.query import Sweep, histories

RESULTS_COLUMNS = [
    "run_id",
    "date",
    "phase",
    "model_name",
    "vision_backbone",
    "text_backbone",
    "attention_type",
    "kd_temperature",
    "kd_alpha",
    "batch_size",
    "learning_rate",
    "epochs",
    "best_epoch",
    "train_loss",
    "val_auc_macro",
    "val_f1_macro",
    "test_auc_macro",
    "test_f1_macro",
    "inference_time_ms",
    "model_size_mb",
    "status",
    "notes",
    "dataset",
    "seed",
    "loss",
    "run_name",
    "parameters",
    "shrunk",
]
XLITE_COLUMNS = [
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
CSV_PHASE = {"sensitivity_tau": "sensitivity", "sensitivity_alpha": "sensitivity"}  # the seed's names


def _text(columns: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


def _student_lr(r) -> object:
    """The rate the student trained at: `train.student_lr` (logged effective since per-stage
    rates exist), else `train.lr` for runs logged before."""
    lr = r.get("params.train.student_lr")
    return lr if isinstance(lr, str) else r.get("params.train.lr")


def _num(x, digits: int) -> str:
    return "" if x is None or x != x else f"{float(x):.{digits}f}"


def monitor(r: pd.Series) -> str:
    """The per-epoch dev metric a run selected its best epoch on (train.monitor)."""
    m = r.get("params.train.monitor")
    return f"dev/{m}" if isinstance(m, str) and m else "dev/avg_f1"


def epochs(r: pd.Series, hist: dict) -> tuple[str, str, str, str]:
    """(epochs run, best epoch, its train loss, note) from the per-epoch history."""
    dev = hist.get((r["run_id"], monitor(r)))
    if not dev:
        return "", "", "", "no per-epoch metrics"
    run = max(dev)
    best = min(dev, key=lambda step: (-dev[step], step))  # the first of equal bests, as training keeps
    loss = hist.get((r["run_id"], "train/loss"), {}).get(best)
    planned = r.get("params.train.student_epochs")
    note = ""
    if isinstance(planned, str) and planned.isdigit() and run < int(planned):
        note = f"early stopping after {run} of {planned} epochs"
    return str(run), str(best), _num(loss, 4), note


def _mean(r: pd.Series, prefix: str, ts: list[str], metric: str) -> str:
    vals = [r.get(f"metrics.{prefix}/{t}/{metric}") for t in ts]
    vals = [v for v in vals if v is not None and v == v]
    return f"{sum(vals) / len(vals):.4f}" if vals else ""


def results_csv(all_sweeps: list[Sweep]) -> str:
    """The CSV text, rows sorted by (phase, dataset, run name, run id): byte-identical rebuilds."""
    ids = [rid for s in all_sweeps if not s.runs.empty for rid in s.runs["run_id"]]
    monitors = {monitor(r) for s in all_sweeps if not s.runs.empty for _, r in s.runs.iterrows()}
    hist = histories(ids, sorted(monitors | {"train/loss"}))
    rows = []
    for s in all_sweeps:
        ts = tasks(s)
        for _, r in s.runs.iterrows():
            loss = r.get("tags.loss")
            kd = loss != "none"
            ran, best, train_loss, note = epochs(r, hist)
            rows.append(
                [
                    r["run_id"],
                    pd.Timestamp(r["start_time"]).tz_convert("UTC").isoformat(timespec="seconds"),
                    s.study,
                    "StudentNet+KD" if kd else "StudentNet",
                    r.get("tags.vision"),
                    r.get("tags.text"),
                    r.get("tags.fusion"),
                    r.get("params.loss.temperature") if kd else "N/A",
                    r.get("params.loss.alpha") if kd else "N/A",
                    r.get("params.train.batch_size"),
                    _student_lr(r),
                    ran,
                    best,
                    train_loss,
                    _mean(r, "best_dev", ts, "auc"),
                    _num(r.get("metrics.best_dev/avg_f1"), 4),
                    _mean(r, "test", ts, "auc"),
                    _num(r.get("metrics.test/avg_f1"), 4),
                    _num(r.get("metrics.latency_ms"), 2),
                    _num(r.get("metrics.size_mb"), 2),
                    "completed",
                    note,
                    s.dataset,
                    r.get("params.seed"),
                    loss,
                    r.get("tags.mlflow.runName"),
                    _num(r.get("metrics.params"), 0),
                    shrunk_parts(r),
                ]
            )
    return _text(RESULTS_COLUMNS, sorted(rows, key=lambda row: (row[2], row[22], str(row[25]), row[0])))


def _kd_value(row: Group, name: str) -> str:
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


def xlite_notes(study: Study, row: Group, epoch_notes: list[str]) -> list[str]:
    """Why a row matters or differs: selection, reuse, fold, refit, seeds, failures."""
    out = []
    picked_for = [p["name"] for p in study.phases if (got := study.chosen(p["name"])) and got[1] is row]
    if picked_for:
        out.append("chosen on validation for " + ", ".join(picked_for))
    if row.phase in SELECTION_PHASES and study.best([row.phase]) is row:
        out.append("best on validation of its phase")
    control = study.chosen("kd_control") if row.phase == "kd_control" else None
    if control and control[1] is not None:  # what the control copies, so the row reads on its own
        out.append(f"control of {control[1].exp_id}: teacher weight alpha 0")
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
    hist = histories([r["run_id"] for r in runs], sorted({monitor(r) for r in runs} | {"train/loss"}))
    out = []
    for study in studies:
        for row in study.rows:
            per_run = [epochs(r, hist) for _, r in row.runs.iterrows()]
            dates = [pd.Timestamp(t).tz_convert("UTC") for t in row.runs["start_time"]] if row.ok else []
            text = xlite_notes(study, row, [n for *_, n in per_run if n])
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
                    row.param("train.student_lr") or row.param("train.lr"),  # older runs: lr only
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
    return _text(XLITE_COLUMNS, out)
