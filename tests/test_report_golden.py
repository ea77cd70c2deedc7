"""Golden documents: every file `python -m reports` writes from hand-made stores (the flat studies,
X-Lite, MIL, BraTS), byte for byte against tests/data/golden/<store>/.

The documents are a contract (a refactor of reports/ must not change a byte of them), so each store
is made deterministic: run ids come from a counter (uuid.uuid4), MLflow's clock ticks one second a
call from a fixed date, and the store is named by a relative URI, as the header prints it. Figures
are compared by their SHA-256 (img.sha256): `reports.plots.draw` writes them reproducibly.
`KDSWEEP_UPDATE_GOLDEN=1` rewrites the golden files: only when a change to a document is meant.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
UPDATE = os.environ.get("KDSWEEP_UPDATE_GOLDEN") == "1"
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class _Clock:
    """Stands in for the `time` module inside mlflow.utils.time: time() ticks 1 s a call."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def time(self) -> float:
        return (START_MS + 1000 * next(self._ticks)) / 1000

    def __getattr__(self, name: str):
        import time

        return getattr(time, name)


def _store(tmp_path: Path, monkeypatch, name: str) -> Path:
    """A fresh sqlite store `<name>.db` in tmp_path (the working directory), with counted run ids
    and a ticking clock; the folder. One name per test: MLflow caches a store's engine by URI."""
    import mlflow.utils.time

    # run ids unique across the stores of one session too: MLflow caches artifact folders by run id
    prefix = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") << 96
    counter = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=prefix + next(counter)))
    monkeypatch.setattr(mlflow.utils.time, "time", _Clock())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{name}.db")
    return tmp_path


# --- the stores -----------------------------------------------------------------------------


def fill_flat() -> None:
    """test_reports' store with a clear winner: loss (with a failed and a killed run), fusion,
    kd (two seeds for one configuration) and backbone sweeps of dataset `toy`."""
    from test_reports import _fill

    _fill(True)


def fill_seeds() -> None:
    """test_report_seeds' loss sweep: a configuration FINISHED one of two seeds."""
    from test_report_runs import loss_sweep

    loss_sweep(
        [
            ("vanilla", 0, 0.70, 0.80),
            ("vanilla", 1, 0.60, 0.70),
            ("combined", 0, 0.68, 0.75),
            ("none", 0, 0.50, 0.60),
            ("none", 1, 0.50, 0.60),
        ],
        seeds=[0, 1],
        failures=["loss.name=combined seed=1"],
    )


def fill_xlite() -> str:
    from test_xlite_report import fill

    return fill()


def fill_mil() -> None:
    from test_mil_report import fill

    fill()


BRATS_PHASES = {"dsmil": 0.78, "resnet3d": 0.82, "swin3d": 0.80, "kd_resnet3d_to_dsmil": 0.79}
BRATS_METHODS = ("mean", "auc_weighted", "stacking")
BRATS_FOLDS = 3


def _brats_preds(signal: float, fold: int) -> str:
    y = np.array([0] * 14 + [1] * 10)
    rng = np.random.default_rng(fold + 7)
    p_lgg = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=len(y)))))
    lines = ["index,grade/label,grade/pred,grade/p/HGG,grade/p/LGG"]
    lines += [f"{i},{y[i]},{int(p > 0.5)},{1 - p:.6f},{p:.6f}" for i, p in enumerate(p_lgg)]
    return "\n".join(lines) + "\n"


def _brats_run(c, exp, parent: str, stage: str, name: str, fold: int, val: float, signal: float) -> str:
    from mlflow.entities import Metric, Param

    tags = {"stage": stage, "phase": name, "fold": str(fold), "seed": "0", "tasks": "grade"}
    tags |= {"sweep_hash": "hb", "mlflow.parentRunId": parent, "mlflow.runName": f"brats-{name}-f{fold}"}
    if name == "dsmil":  # what pipeline.training.run tags a DSMIL run with
        tags["mil_objective"] = "mean_ce"
    rid = c.create_run(exp, tags=tags).info.run_id
    m = {f"best_dev/grade/{k}": val - d for k, d in (("auc", 0), ("acc", 0.05), ("balanced_acc", 0.08))}
    m |= {
        f"best_dev/grade/{k}": val - d for k, d in (("f1", 0.1), ("sensitivity", 0.02), ("specificity", 0.2))
    }
    m |= {"test/grade/auc": val - 0.03 + 0.01 * fold, "test/grade/balanced_acc": val - 0.1}
    if stage == "student":
        m |= {"params": 2e6 * (1 + len(name)), "latency_ms": 3.0 + len(name), "peak_rss_mb": 900.0 + fold}
    params = {"seed": 0, "split.fold": fold, "split.folds": BRATS_FOLDS, "train.monitor": "grade/auc"}
    if name == "kd_resnet3d_to_dsmil":  # a DSMIL run from before the mil_objective tag: mean_ce
        params["student.mil.name"] = "dsmil"
    c.log_batch(
        rid,
        metrics=[Metric(k, float(v), 0, 0) for k, v in m.items()],
        params=[Param(k, str(v)) for k, v in params.items()],
    )
    c.log_text(rid, _brats_preds(signal, fold), "predictions/test.csv")
    c.set_terminated(rid, "FINISHED")
    return rid


def fill_brats() -> None:
    """A BraTS models sweep: four phases over 3 folds (one trial failed), three ensemble methods
    per fold (the weighted one skipped on one fold), as pipeline.sweeps writes trials and ensembles.json."""
    from mlflow.entities import Param
    from test_report_runs import toy_experiment

    c, exp = toy_experiment()
    tags = {"stage": "sweep", "study": "brats", "study_kind": "brats", "dataset": "brats-toy"}
    pid = c.create_run(exp, tags=tags | {"sweep_hash": "hb"}).info.run_id
    trials = []
    for phase, val in BRATS_PHASES.items():
        for fold in range(BRATS_FOLDS):
            t = {
                "label": f"{phase} fold={fold} seed=0",
                "status": "FINISHED",
                "dev": None,
                "test_avg_f1": None,
            }
            t |= {
                "error": None,
                "phase": phase,
                "exp_id": phase.upper(),
                "point": {},
                "seed": 0,
                "fold": fold,
            }
            if phase == "swin3d" and fold == 2:
                trials.append(
                    t | {"status": "FAILED", "run_id": None, "error": "RuntimeError: out of memory"}
                )
                continue
            rid = _brats_run(c, exp, pid, "student", phase, fold, val + 0.01 * fold, 1.0 + val)
            trials.append(t | {"run_id": rid, "dev": val})
    records = []
    for fold in range(BRATS_FOLDS):
        for k, method in enumerate(BRATS_METHODS):
            if method == "auc_weighted" and fold == 1:
                records.append(
                    {"method": method, "seed": 0, "fold": fold, "run_id": None, "status": "skipped: x"}
                )
                continue
            val = 0.81 + 0.025 * k + 0.002 * fold  # stacking beats ResNet-3D on every fold
            rid = _brats_run(c, exp, pid, "ensemble", f"ensemble_{method}", fold, val, 2.0)
            records.append({"method": method, "seed": 0, "fold": fold, "run_id": rid, "status": "FINISHED"})
    c.log_batch(pid, params=[Param("seeds", "[0]"), Param("metric", "dev/grade/auc")])
    c.log_text(pid, json.dumps(trials), "trials.json")
    c.log_text(pid, json.dumps(records), "ensembles.json")
    c.set_terminated(pid, "FINISHED")


# --- the comparison -------------------------------------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    """Every file the report wrote, by relative path; figures as one manifest of their hashes."""
    out = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    pngs = {k: v for k, v in out.items() if k.endswith(".png")}
    out = {k: v for k, v in out.items() if k not in pngs}
    manifest = "".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in sorted(pngs.items()))
    return out | {"img.sha256": manifest.encode()}


def _check(docs: Path, name: str) -> None:
    got, want_dir = _files(docs), GOLDEN / name
    if UPDATE:
        for old in want_dir.rglob("*") if want_dir.exists() else []:
            if old.is_file():
                old.unlink()
        for rel, data in got.items():
            (want_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (want_dir / rel).write_bytes(data)
        return
    assert want_dir.is_dir(), f"no golden files in {want_dir}: run with KDSWEEP_UPDATE_GOLDEN=1"
    want = {p.relative_to(want_dir).as_posix(): p.read_bytes() for p in want_dir.rglob("*") if p.is_file()}
    assert sorted(got) == sorted(want), f"{name}: files differ (written in {docs})"
    for rel in sorted(want):
        assert got[rel] == want[rel], f"{name}/{rel} differs from the golden copy (written in {docs})"


def _report(args: list[str]) -> None:
    from reports.__main__ import main

    assert main(args) == 0


STORES: dict[str, Callable[[], object]] = {
    "flat": fill_flat,
    "flat-seeds": fill_seeds,
    "mil": fill_mil,
    "brats": fill_brats,
}


@pytest.mark.parametrize("name", sorted(STORES))
def test_documents_match_the_golden_files(name, tmp_path, monkeypatch):
    store = _store(tmp_path, monkeypatch, name)
    STORES[name]()
    _report(["--out", "docs"])
    _check(store / "docs", name)


def test_xlite_documents_match_the_golden_files(tmp_path, monkeypatch):
    """The full X-Lite study, and (--sweep-id) the earlier bare sweep of the same store."""
    store = _store(tmp_path, monkeypatch, "xlite")
    older = fill_xlite()
    _report(["--out", "docs"])
    _check(store / "docs", "xlite")
    _report(["--out", "older", "--sweep-id", older])
    _check(store / "older", "xlite-older")
