"""The multilabel task kind end to end: a synthetic NIH ChestX-ray14 folder, image-only CNN
teacher and CNN + MHSA student (profile xlite-tiny), one tracked run into a tmp MLflow store."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config.loader import load_experiment
from pipeline.data.chestxray import LABELS
from pipeline.training.run import run_experiment
from support import sqlite_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synth_xray(tmp_path_factory):
    from pipeline.data.synth.chestxray import generate_chestxray

    out = tmp_path_factory.mktemp("synth-xray") / "chestxray"
    generate_chestxray(out, n_patients=60, image_size=32, seed=0)
    return out


def test_multilabel_run_logs_the_kinds_terms_metrics_and_predictions(synth_xray, tmp_path, monkeypatch):
    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = load_experiment(
        "default",
        [
            "dataset=synthetic-chestxray",
            "profile=xlite-tiny",
            f"dataset.root={synth_xray}",
            "teacher.vision.image_size=32",
            "student.vision.image_size=32",
            "train.teacher_epochs=1",
            "train.student_epochs=2",
            "train.latency_runs=5",
            "train.device=cpu",
        ],
    )
    assert cfg.dataset.kind == "multilabel" and cfg.student.vision.attention == "mhsa"
    result = run_experiment(cfg, say=lambda _: None)
    run = MlflowClient(uri).get_run(result.student_run_id)
    m = run.data.metrics
    # the kind's terms (alpha * binary KD + (1 - alpha) * weighted BCE) and metrics
    assert {"train/kd", "train/weighted_bce", "train/loss"} <= set(m)
    for key in ("test/findings/auc", "test/findings/f1", "test/findings/f1_tuned", "test/avg_auc"):
        assert key in m and 0.0 <= m[key] <= 1.0, key
    assert {f"test/findings/threshold/{n}" for n in LABELS} <= set(m)  # tuned on dev, applied to test
    client = MlflowClient(uri)
    local = client.download_artifacts(run.info.run_id, "predictions/test.csv", str(tmp_path))
    pred = pd.read_csv(local)
    assert list(pred.columns[1:3]) == ["findings/Atelectasis/label", "findings/Atelectasis/p"]
    assert len(pred.columns) == 1 + 2 * len(LABELS)
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "errors")}
    assert arts == {"errors/findings_confused_pairs.json"}
    assert "confusion" not in {a.path for a in client.list_artifacts(run.info.run_id)}
    text = client.download_artifacts(run.info.run_id, "label_maps.json", str(tmp_path / "lm"))
    assert list(pd.read_json(io.StringIO(open(text).read()), typ="series")["findings"]) == list(LABELS)
