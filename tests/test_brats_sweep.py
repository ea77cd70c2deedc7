"""Seed 002's models study (sweeps/brats.yaml) as a user runs it, at smoke size: `python -m pipeline
sweep` on a synthetic BraTS folder (two folds, one epoch) through real Ray Tune trials into a real
MLflow store, killed with SIGKILL after its first fold run finished, then the same command again.
It resumes without duplicates, runs the ensembles, and docs/brats_models.md is rebuilt. The
ensemble's saved numbers are recomputed here from its members' saved predictions. (The full
5-fold `make sweep-brats` is timed by `make bench`.)"""

from __future__ import annotations

import io
import json
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from support import kill_after_first_student, runs_by_stage, sweep_cli

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


def test_brats_study_resumes_ensembles_and_reports(tmp_path, kdsweep_cache):
    from pipeline.data.synth.brats import generate_brats
    from pipeline.training.ensemble import combine

    root = tmp_path / "brats"
    generate_brats(root, n_hgg=14, n_lgg=8, shape=(24, 24, 12), seed=0)
    cmd, env, uri, docs = sweep_cli(
        tmp_path,
        kdsweep_cache,
        _study(tmp_path),
        [
            "dataset=synthetic-brats",
            "profile=brats3d-tiny",
            f"dataset.root={root}",
            "student.vision.image_size=24",
            "train.teacher_epochs=1",
            "train.student_epochs=1",
            "train.latency_runs=3",
            "train.device=cpu",
            "tracking.log_models=none",
        ],
    )
    client = MlflowClient(uri)
    kill_after_first_student(cmd, env, client, 600)  # then the same command again
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "already FINISHED" in second.stdout

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
    assert (
        "ensemble does not beat the best single model" in doc or "The ensemble beats the best single" in doc
    )
    assert (
        "(img/synthetic-brats_brats_roc.png)" in doc
        and (docs / "img" / "synthetic-brats_brats_roc.png").exists()
    )
