"""Hand-made MLflow runs for the report tests (plain functions, imported by tests/test_report*.py),
and a check that the runs they make are what the report tests assume."""

from __future__ import annotations

import json

N = 40  # test samples per hand-made run


def preds(correct: float, labels: list[int] | None = None) -> str:
    """Prediction CSV for tasks a and b (2 classes each); the first `correct` share is right."""
    ys = labels if labels is not None else [i % 2 for i in range(N)]
    lines = ["index,a/label,a/pred,a/p/x,a/p/y,b/label,b/pred,b/p/x,b/p/y"]
    for i, y in enumerate(ys):
        p = y if i < correct * len(ys) else 1 - y
        lines.append(f"{i},{y},{p},{1 - p}.0,{p}.0,{y},{p},{1 - p}.0,{p}.0")
    return "\n".join(lines) + "\n"


def student(
    c,
    exp,
    sweep_hash,
    loss,
    fusion,
    f1,
    dev,
    latency,
    correct,
    seed=0,
    label=None,
    extra=None,
    tags=None,
    history=None,
    more=None,
):
    """A FINISHED student run; `history`: per-epoch (dev avg F1, train loss), logged at step=epoch;
    `more`: more (or other) final metrics."""
    name = f"toy-{fusion}-{loss}-s{seed}"
    tags = {
        "stage": "student",
        "loss": loss,
        "fusion": fusion,
        "vision": "vit",
        "text": "bert",
        "tasks": "a,b",
        "sweep_hash": sweep_hash,
        "teacher_run_id": "t0",
        "mlflow.runName": name,
        **(tags or {}),
    }
    r = c.create_run(exp, tags=tags)
    rid = r.info.run_id
    params = {
        "seed": seed,
        "dataset.tasks.a": "FieldA",
        "dataset.tasks.b": "FieldB",
        "loss.alpha": 0.7,
        "loss.temperature": 4.0,
        "train.batch_size": 32,
        "train.lr": 0.001,
        "train.student_epochs": 5,
        **(extra or {}),
    }
    for k, v in params.items():
        c.log_param(rid, k, v)
    metrics = {
        "test/a/f1": f1[0],
        "test/b/f1": f1[1],
        "test/avg_f1": (f1[0] + f1[1]) / 2,
        "best_dev/avg_f1": dev,
        "latency_ms": latency,
        "latency_p90_ms": latency + 1,
        "size_mb": 1.0,
        "params": 1e5,
        "test/a/acc": f1[0],
        "test/b/acc": f1[1],
        "test/a/auc": 0.9,
        "test/b/auc": 0.8,
        "test/a/precision/x": 1,
        "test/a/precision/y": 1,
        "test/b/precision/x": 1,
        "test/b/precision/y": 1,
        **(more or {}),
    }
    for k, v in metrics.items():
        c.log_metric(rid, k, v)
    for epoch, (d, loss_value) in enumerate(history or [], start=1):
        c.log_metric(rid, "dev/avg_f1", d, step=epoch)
        c.log_metric(rid, "train/loss", loss_value, step=epoch)
    c.log_text(rid, correct if isinstance(correct, str) else preds(correct), "predictions/test.csv")
    c.set_terminated(rid, "FINISHED")
    return {
        "label": label or f"loss.name={loss} seed={seed}",
        "status": "FINISHED",
        "dev": dev,
        "test_avg_f1": None,
        "run_id": rid,
        "error": None,
    }


def failed(label: str, error: str = "NonFiniteLoss: non-finite loss at epoch 1") -> dict:
    return {
        "label": label,
        "status": "FAILED",
        "dev": None,
        "test_avg_f1": None,
        "run_id": None,
        "error": error,
    }


def parent(c, exp, study, kind, sweep_hash, trials, seeds=None, dataset="toy"):
    r = c.create_run(
        exp,
        tags={
            "stage": "sweep",
            "study": study,
            "study_kind": kind,
            "dataset": dataset,
            "sweep_hash": sweep_hash,
        },
    )
    if seeds is not None:  # as pipeline.sweeps.sweep logs it: str(list)
        c.log_param(r.info.run_id, "seeds", str(list(seeds)))
    c.log_text(r.info.run_id, json.dumps(trials), "trials.json")
    c.set_terminated(r.info.run_id, "FINISHED")
    return r.info.run_id


def toy_experiment():
    """(client, experiment id) of the hand-made runs' experiment in the current store."""
    from pipeline import tracking

    c = tracking.client()
    return c, tracking.experiment_id(c, "kdsweep-toy")


def loss_sweep(specs, seeds=(0,), sweep_hash="h1", failures=()) -> str:
    """A loss sweep in the current store: specs are (loss, seed, dev, correct[, f1]) tuples."""
    c, exp = toy_experiment()
    trials = []
    for loss, seed, dev, correct, *f1 in specs:
        f = f1[0] if f1 else (correct, correct)
        trials.append(student(c, exp, sweep_hash, loss, "cross_attention", f, dev, 5.0, correct, seed=seed))
    trials += [failed(label) for label in failures]
    return parent(c, exp, "loss", "loss", sweep_hash, trials, seeds)


def test_preds_score_the_share_they_are_told():
    import io

    import pandas as pd
    from sklearn.metrics import f1_score

    p = pd.read_csv(io.StringIO(preds(0.75)))
    assert f1_score(p["a/label"], p["a/pred"], average="macro") == 0.75
