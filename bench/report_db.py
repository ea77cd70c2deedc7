"""A history of sweeps written straight into an MLflow sqlite store, for the report-scaling figure.

Writing 10,000 runs through the client (one request per call) would take longer than the whole
benchmark, so rows go in bulk through MLflow's own SQLAlchemy tables (the schema is created by
MLflow itself first). Each run looks like one written by pipeline.training.run: the full flattened
config as params, the same tags, per-epoch dev/train metrics and final test/best_dev metrics
(computed by pipeline.training.evaluate.metrics from synthetic predictions), and, like real runs, a
predictions/test.csv artifact (hard links to a shared pool of files) and, per sweep, trials.json.
Sweeps cycle through the four study kinds and two datasets, about 50 student runs each.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path

import numpy as np

SPACES = {
    "loss": ({"loss.name": ["none", "vanilla", "combined", "crd", "rkd", "mmd"]}, 8),
    "fusion": (
        {
            "student.fusion.name": [
                "cross_attention",
                "film",
                "transformer_concat",
                "concat_mlp",
                "gated",
                "shomr",
                "energy_aware_adaptive",
                "simple",
            ],
            "student.fusion.layers": [1, 2, 3],
            "student.fusion.heads": [2, 4],
        },
        1,
    ),
    "kd": ({"loss.temperature": [1.0, 2.0, 4.0, 6.0, 8.0], "loss.alpha": [0.1, 0.3, 0.5, 0.7, 0.9]}, 2),
    "backbone": (
        {
            "student.vision.name": ["vit_tiny_patch16_224", "resnet18", "efficientnet_b0"],
            "student.text.name": ["bert", "distilbert"],
        },
        8,
    ),
}
DATASETS = ("synthetic-wound", "synthetic-medpix")
POOL = 40  # distinct prediction sets (and their metrics) shared by the generated runs


def _points(kind: str) -> list[dict]:
    space, seeds = SPACES[kind]
    points = [{}]
    for key, values in space.items():
        points = [{**p, key: v} for p in points for v in values]
    return [{**p, "seed": s} for s in range(seeds) for p in points]


class _Pool:
    """Per dataset: POOL prediction sets of varied quality, their metrics and predictions CSV."""

    def __init__(self, dataset: str, folder: Path, rng: np.random.Generator) -> None:
        from pipeline.config.loader import load_experiment
        from pipeline.config.params import run_params
        from pipeline.data.synth.medpix import KINDS
        from tasks import TASK_KINDS, Predictions

        cfg = load_experiment("default", [f"dataset={dataset}"])
        self.params = {k: str(v)[:6000] for k, v in run_params(cfg).items()}  # as a run logs them
        self.tasks = list(cfg.dataset.tasks)
        kind = KINDS["wound" if "wound" in dataset else "medpix"]
        self.label_maps = {t: tuple(sorted(c)) for t, c in zip(self.tasks, kind.classes, strict=True)}
        task_kind = TASK_KINDS.get("multiclass")(self.label_maps)
        self.entries = []
        n = 300
        for i in range(POOL):
            quality = 0.3 + 0.6 * i / (POOL - 1)
            labels, probs = {}, {}
            for t, classes in self.label_maps.items():
                k = len(classes)
                y = rng.integers(0, k, n)
                logits = rng.normal(size=(n, k))
                logits[np.arange(n), y] += 4 * quality
                probs[t] = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
                labels[t] = y
            pred = Predictions(probs, labels, np.arange(n))
            test, _ = task_kind.metrics(pred)
            path = folder / f"{dataset}-{i}.csv"
            path.write_text(task_kind.predictions_csv(pred))
            self.entries.append((test, path))


def _metric_rows(run_id: str, final: dict, epochs: int, now: int) -> tuple[list[dict], list[dict]]:
    rows, latest = [], {}
    for step in range(1, epochs + 1):
        frac = step / epochs
        hist = {"dev/" + k.split("/", 1)[1]: v * frac for k, v in final.items() if k.startswith("best_dev/")}
        hist.update({"train/loss": 2.0 - frac, "train/label": 1.0 - 0.5 * frac, "train/kd": 0.5 - 0.2 * frac})
        for k, v in hist.items():
            row = {"key": k, "value": v, "timestamp": now, "step": step, "is_nan": False, "run_uuid": run_id}
            rows.append(row)
            latest[k] = row
    for k, v in final.items():
        v = float(v)
        row = {
            "key": k,
            "value": 0.0 if v != v else v,
            "timestamp": now,
            "step": 0,
            "is_nan": v != v,
            "run_uuid": run_id,
        }
        rows.append(row)
        latest[k] = row
    return rows, list(latest.values())


def populate(ctx, uri: str, n_runs: int, seed: int = 0, pools: dict | None = None) -> dict:
    """Fill the (empty) store at `uri` with `n_runs` runs (a bench child: `ctx` is unused)."""
    import sqlalchemy as sa

    from pipeline import tracking
    from pipeline.config.names import sweep_name, teacher_trial_name, trial_name

    os.environ["MLFLOW_TRACKING_URI"] = uri
    c = tracking.client()
    db = Path(uri.removeprefix("sqlite:///").split("?")[0])
    if pools is None:
        (db.parent / "pool").mkdir(parents=True, exist_ok=True)
        pools = {d: _Pool(d, db.parent / "pool", np.random.default_rng(seed)) for d in DATASETS}
    exps = {d: tracking.experiment_id(c, f"kdsweep-{d}") for d in DATASETS}
    art = {d: Path(c.get_experiment(e).artifact_location.removeprefix("file://")) for d, e in exps.items()}
    rnd = random.Random(seed)
    tables: dict[str, list[dict]] = {k: [] for k in ("runs", "tags", "params", "metrics", "latest_metrics")}
    t0, written, sweeps, i = 1_700_000_000_000, 0, 0, 0

    def add_run(dataset: str, name: str, tags: dict, params: dict, final: dict, start: int) -> str:
        run_id = uuid.uuid4().hex
        folder = art[dataset] / run_id / "artifacts"
        tables["runs"].append(
            {
                "run_uuid": run_id,
                "name": name,
                "source_type": "LOCAL",
                "source_name": "bench",
                "user_id": "bench",
                "status": "FINISHED",
                "start_time": start,
                "end_time": start + 60_000,
                "lifecycle_stage": "active",
                "artifact_uri": folder.as_uri(),
                "experiment_id": int(exps[dataset]),
                "entry_point_name": "",
                "source_version": "",
            }
        )
        tags = {**tags, "mlflow.runName": name, "mlflow.user": "bench"}
        tables["tags"] += [{"key": k, "value": str(v), "run_uuid": run_id} for k, v in tags.items()]
        tables["params"] += [{"key": k, "value": str(v), "run_uuid": run_id} for k, v in params.items()]
        rows, latest = _metric_rows(run_id, final, 6 if tags.get("stage") != "sweep" else 0, start)
        tables["metrics"] += rows
        tables["latest_metrics"] += latest
        return run_id

    while written < n_runs:
        kind = list(SPACES)[i % len(SPACES)]
        dataset = DATASETS[(i // len(SPACES)) % len(DATASETS)]
        pool, start = pools[dataset], t0 + i * 3_600_000
        sweep_hash = uuid.uuid4().hex[:16]
        common = {"study": kind, "sweep_hash": sweep_hash, "dataset": dataset, "tasks": ",".join(pool.tasks)}
        points = _points(kind)[: max(0, n_runs - written - 2)]
        parent = add_run(
            dataset,
            sweep_name(kind, dataset),
            {**common, "stage": "sweep", "study_kind": kind, "trials_failed": 0},
            {"study": kind, "search": "grid", "trials": len(points)},
            {"trials_finished": len(points)},
            start,
        )
        t_metrics, _ = pool.entries[-1]
        base_tags = {
            "profile": "tiny",
            "vision": "vit_tiny_patch16_224",
            "text": "distilbert",
            "fusion": "cross_attention",
            "teacher_hash": uuid.uuid4().hex[:16],
            "mlflow.parentRunId": parent,
        }
        teacher = add_run(
            dataset,
            teacher_trial_name({}, 0, None, base_tags["teacher_hash"]),
            {**common, **base_tags, "stage": "teacher", "seed": 0},
            pool.params,
            {**{f"test/{k}": v for k, v in t_metrics.items()}, "latency_ms": 9.0, "size_mb": 2.7},
            start + 1,
        )
        trials = []
        for j, point in enumerate(points):
            params = {**pool.params, **{k: str(v) for k, v in point.items()}}
            test, csv_path = pool.entries[rnd.randrange(POOL)]
            final = {f"test/{k}": v for k, v in test.items()}
            final.update(
                {
                    f"best_dev/{k}": v
                    for k, v in test.items()
                    if "/precision/" not in k and "/recall/" not in k
                }
            )
            final.update(
                {"latency_ms": rnd.uniform(3, 8), "latency_p90_ms": 9.0, "size_mb": 1.1, "params": 2.7e5}
            )
            tags = {
                **common,
                **base_tags,
                "stage": "student",
                "seed": point["seed"],
                "teacher_run_id": teacher,
                "loss": point.get("loss.name", "vanilla"),
                "config_hash": uuid.uuid4().hex[:16],
                "fusion": point.get("student.fusion.name", "cross_attention"),
                "vision": point.get("student.vision.name", "vit_tiny_patch16_224"),
                "text": point.get("student.text.name", "distilbert"),
            }
            label = " ".join(f"{k.split('.', 1)[1]}={v}" for k, v in point.items() if k != "seed")
            label += f" seed={point['seed']}"
            own = {k: v for k, v in point.items() if k != "seed"}
            run_id = add_run(dataset, trial_name(own, point["seed"]), tags, params, final, start + 2 + j)
            folder = art[dataset] / run_id / "artifacts" / "predictions"
            folder.mkdir(parents=True, exist_ok=True)
            os.link(csv_path, folder / "test.csv")
            trials.append(
                {
                    "label": label,
                    "status": "FINISHED",
                    "dev": final["best_dev/avg_f1"],
                    "test_avg_f1": final["test/avg_f1"],
                    "run_id": run_id,
                    "error": None,
                }
            )
        (art[dataset] / parent / "artifacts").mkdir(parents=True, exist_ok=True)
        (art[dataset] / parent / "artifacts" / "trials.json").write_text(json.dumps(trials, indent=2))
        written += len(points) + 2
        sweeps += 1
        i += 1
    engine = sa.create_engine(f"sqlite:///{db}")
    sql = tracking.sql_tables()  # MLflow's own tables, through the one package that knows MLflow
    with engine.begin() as con:
        for name, rows in tables.items():  # runs first: the others refer to them
            for k in range(0, len(rows), 50_000):
                con.execute(sql[name].insert(), rows[k : k + 50_000])
    engine.dispose()
    return {
        "runs": written,
        "sweeps": sweeps,
        "metric_rows": len(tables["metrics"]),
        "param_rows": len(tables["params"]),
    }


def populate_all(ctx, stores: dict[str, str]) -> dict:
    """`populate` each store (run count -> URI) in this one process, sharing one pool of
    prediction files (hard links need them on the same file system: beside the first store)."""
    first = Path(next(iter(stores.values())).removeprefix("sqlite:///")).parent.parent / "pool"
    first.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pools = {d: _Pool(d, first, rng) for d in DATASETS}
    return {n: populate(ctx, uri, int(n), pools=pools) for n, uri in stores.items()}
