"""Seed 002's models study (sweeps/brats.yaml) at smoke size: the sweep on a synthetic BraTS folder
(two folds, one epoch) through real Ray Tune trials (the session's Ray) into a real MLflow store;
it runs the ensembles, and docs/brats_models.md is built from the store. The ensemble's saved
numbers are recomputed here from its members' saved predictions. (The phased resume after
kill -9 is tested once, on the MIL study: tests/test_mil_sweep.py; the full 5-fold
`make sweep-brats` is timed by `make bench`.)"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from support import runs_by_stage, sqlite_store

REPO = Path(__file__).resolve().parents[1]
FOLDS = 2
PHASES = ("dsmil", "resnet3d", "swin3d", "kd_resnet3d_to_dsmil")
METHODS = ("mean", "auc_weighted", "stacking")
pytestmark = pytest.mark.slow


def _study(tmp_path: Path) -> Path:
    """sweeps/brats.yaml itself, with 2 folds instead of 5."""
    data = yaml.safe_load((REPO / "sweeps" / "brats.yaml").read_text())
    for p in data["phases"]:
        p["cv"]["folds"] = FOLDS
    path = tmp_path / "brats-smoke.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _text(client: MlflowClient, run_id: str, path: str, tmp: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp))).read_text()


def test_brats_study_runs_ensembles_and_reports(tmp_path, monkeypatch, local_ray):
    from pipeline.data.synth.brats import generate_brats
    from pipeline.sweeps.sweep import run_sweep
    from pipeline.training.ensemble import combine
    from reports.__main__ import build

    root = tmp_path / "brats"
    generate_brats(root, n_hgg=14, n_lgg=8, shape=(24, 24, 12), seed=0)
    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    overrides = [
        "dataset=synthetic-brats",
        "profile=brats3d-tiny",
        f"dataset.root={root}",
        "student.vision.image_size=24",
        "train.teacher_epochs=1",
        "train.student_epochs=1",
        "train.latency_runs=3",
        "train.device=cpu",
        "tracking.log_models=none",
    ]
    result = run_sweep(str(_study(tmp_path)), overrides, say=lambda s: None)
    assert all(r.status == "FINISHED" for r in result.rows), [(r.label, r.error) for r in result.rows]
    docs = tmp_path / "docs"
    build(docs)
    client = MlflowClient(uri)

    students = runs_by_stage(client, "student")
    assert not [r for r in students if r.info.status == "RUNNING"]
    finished = [r for r in students if r.info.status == "FINISHED"]
    per_fold = Counter((r.data.tags["phase"], r.data.tags["fold"]) for r in finished)
    assert per_fold == Counter({(p, str(f)): 1 for p in PHASES for f in range(FOLDS)})
    # the three models share one metrics.json layout
    keys = {
        r.data.tags["phase"]: set(json.loads(_text(client, r.info.run_id, "metrics.json", tmp_path)))
        for r in finished
    }
    assert keys["dsmil"] == keys["resnet3d"] == keys["swin3d"]
    # one teacher per fold (the ResNet-3D teacher of the KD configuration), none for loss none
    teachers = [r for r in runs_by_stage(client, "teacher") if r.info.status == "FINISHED"]
    assert sorted(r.data.tags["fold"] for r in teachers) == [str(f) for f in range(FOLDS)]

    ensembles = [r for r in runs_by_stage(client, "ensemble") if r.info.status == "FINISHED"]
    assert Counter((r.data.tags["method"], r.data.tags["fold"]) for r in ensembles) == Counter(
        {(m, str(f)): 1 for m in METHODS for f in range(FOLDS)}
    )
    by_id = {r.info.run_id: r for r in finished}
    for e in ensembles:  # the saved numbers follow from the members' saved predictions
        members = [by_id[i] for i in e.data.tags["members"].split(",")]
        assert [m.data.tags["phase"] for m in members] == ["dsmil", "resnet3d", "swin3d"]
        assert {m.data.tags["fold"] for m in members} == {e.data.tags["fold"]}

        def probs(run_id: str, split: str) -> pd.DataFrame:
            return pd.read_csv(io.StringIO(_text(client, run_id, f"predictions/{split}.csv", tmp_path)))

        dev = [probs(m.info.run_id, "dev") for m in members]
        test = [probs(m.info.run_id, "test") for m in members]
        cols = [c for c in dev[0].columns if c.startswith("grade/p/")]
        y = dev[0]["grade/label"].to_numpy(int)
        want_dev, want_test = combine(
            e.data.tags["method"], [d[cols].to_numpy() for d in dev], [t[cols].to_numpy() for t in test], y, 0
        )
        saved = probs(e.info.run_id, "test")
        np.testing.assert_allclose(saved[cols].to_numpy(), want_test, atol=2e-6)
        np.testing.assert_allclose(probs(e.info.run_id, "dev")[cols].to_numpy(), want_dev, atol=2e-6)
        from sklearn.metrics import roc_auc_score

        yt = test[0]["grade/label"].to_numpy(int)
        assert e.data.metrics["test/grade/auc"] == pytest.approx(roc_auc_score(yt, want_test[:, 1]), abs=1e-6)
        inputs = client.get_run(e.info.run_id).inputs.dataset_inputs
        assert {i.dataset.source for i in inputs} == {
            json.dumps({"uri": f"runs:/{m.info.run_id}/predictions"}) for m in members
        }

    doc = (docs / "brats_models.md").read_text()
    assert doc.startswith("<!-- Generated by")
    for title in ("DSMIL", "ResNet-3D", "Swin-3D", "Ensemble (mean)", "Ensemble (stacking on validation)"):
        assert f"| {title} | {FOLDS} |" in doc
    assert "## Does the ensemble beat the best single model?" in doc
    # the DSMIL runs' mil_objective tags reach the document; the 3-D models have no such objective
    assert "DSMIL objective: DSMIL, DSMIL taught by ResNet-3D (KD): mean of max and bag scores" in doc
    assert (
        "ensemble does not beat the best single model" in doc or "The ensemble beats the best single" in doc
    )
    assert (
        "(img/synthetic-brats_brats_roc.png)" in doc
        and (docs / "img" / "synthetic-brats_brats_roc.png").exists()
    )
