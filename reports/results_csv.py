"""docs/results.csv: one row per FINISHED student run, a plain CSV (pandas.read_csv reads it).

Columns follow the X-ray study's results.csv template (seed 004) wherever it defines one, with
these departures, each because the template's column would mis-name what it holds here:
`run_id` (the MLflow run id) replaces `experiment_id`; the student's two backbones replace
`cnn_backbone` (`vision_backbone`, `text_backbone`); `attention_type` holds the fusion module;
`best_epoch` follows `epochs`; `dataset`, `seed`, `loss` and `run_name` come last.

`epochs` is the number of epochs run (early stopping may end before train.student_epochs),
counted from the per-epoch dev metric; `best_epoch` is the epoch of the best dev metric, whose
checkpoint was restored and tested; `train_loss` is that epoch's mean training loss. A run
without per-epoch metrics leaves these three empty rather than guess. `date` is the run's start
in ISO 8601 with its UTC offset. The "generated" notice is in docs/index.md, not in the file.
"""

from __future__ import annotations

import csv
import io

import pandas as pd

from reports.common import tasks
from reports.query import Sweep, histories

COLUMNS = [
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
]


def _mean(r: pd.Series, prefix: str, ts: list[str], metric: str) -> str:
    vals = [r.get(f"metrics.{prefix}/{t}/{metric}") for t in ts]
    vals = [v for v in vals if v is not None and v == v]
    return f"{sum(vals) / len(vals):.4f}" if vals else ""


def _num(x, digits: int) -> str:
    return "" if x is None or x != x else f"{float(x):.{digits}f}"


def _monitor(r: pd.Series) -> str:
    m = r.get("params.train.monitor")
    return f"dev/{m}" if isinstance(m, str) and m else "dev/avg_f1"


def _epochs(r: pd.Series, hist: dict) -> tuple[str, str, str, str]:
    """(epochs run, best epoch, its train loss, note) from the per-epoch history."""
    dev = hist.get((r["run_id"], _monitor(r)))
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


def results_csv(all_sweeps: list[Sweep]) -> str:
    """The CSV text, rows sorted by (phase, dataset, run name, run id): byte-identical rebuilds."""
    ids = [rid for s in all_sweeps if not s.runs.empty for rid in s.runs["run_id"]]
    monitors = {_monitor(r) for s in all_sweeps if not s.runs.empty for _, r in s.runs.iterrows()}
    hist = histories(ids, sorted(monitors | {"train/loss"}))
    rows = []
    for s in all_sweeps:
        ts = tasks(s)
        for _, r in s.runs.iterrows():
            loss = r.get("tags.loss")
            kd = loss != "none"
            epochs, best, train_loss, note = _epochs(r, hist)
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
                    r.get("params.train.lr"),
                    epochs,
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
                ]
            )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    w.writerows(sorted(rows, key=lambda row: (row[2], row[22], str(row[25]), row[0])))
    return buf.getvalue()
