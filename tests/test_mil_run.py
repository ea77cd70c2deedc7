"""Multiple-instance learning end to end at smoke size: BraTS-layout bags -> DSMIL teacher and
student -> one tracked run (real MLflow, sqlite in tmp), with LDAM + DRW and the weighted
sampler wired through the config; and the config checks that keep bags and models matched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from core.errors import ConfigError
from pipeline.config.loader import load_experiment
from support import sqlite_store


@pytest.fixture(scope="module")
def synth_brats(tmp_path_factory) -> Path:
    from pipeline.data.synth.brats import generate_brats

    out = tmp_path_factory.mktemp("brats") / "brats"
    generate_brats(out, n_hgg=14, n_lgg=6, shape=(24, 24, 12), seed=0)
    return out


def _cfg(root: Path, *extra: str):
    return load_experiment(
        "mil",
        [
            f"dataset.root={root}",
            "teacher.vision.image_size=24",
            "student.vision.image_size=24",
            "train.teacher_epochs=1",
            "train.student_epochs=3",
            "train.patience=3",
            "train.latency_runs=3",
            "train.device=cpu",
            *extra,
        ],
    )


def test_bags_batch_as_padded_instances_with_a_mask(synth_brats):
    from pipeline.training.run import prepare

    data, _ = prepare(_cfg(synth_brats, "split.folds=3", "split.fold=0"), lambda _: None)
    batch = next(iter(data.loader("train", 4)))
    image, mask = batch["image"], batch["instance_mask"]
    assert image.dtype == torch.uint8 and image.shape[:3] == (4, mask.shape[1], 3)
    assert mask.any(1).all() and mask.sum(1).max() == mask.shape[1]  # trimmed to the largest bag
    for b in range(4):  # real instances first, then padding (all zero)
        n = int(mask[b].sum())
        assert mask[b, :n].all() and not image[b, n:].any()
    facts = data.facts()
    assert set(facts) >= {"data/train_bags/HGG", "data/train_bags/LGG", "data/instances_median"}
    assert facts["data/train_bags/HGG"] > facts["data/train_bags/LGG"]

    # the weighted sampler draws both grades about equally often, deterministically per seed
    def drawn(seed: int) -> torch.Tensor:
        return torch.cat([b["labels"]["grade"] for b in data.loader("train", 4, weighted=True, seed=seed)])

    assert torch.equal(drawn(1), drawn(1)) and not torch.equal(drawn(1), drawn(2))
    many = torch.cat([drawn(s) for s in range(30)]).float()
    assert abs(many.mean().item() - 0.5) < 0.1


@pytest.mark.slow
def test_mil_run_logs_stability_evidence_and_metrics_json(synth_brats, tmp_path, monkeypatch):
    from pipeline.training.run import run_experiment

    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = _cfg(
        synth_brats, "loss.label_loss=ldam_drw", "loss.ldam.drw_epoch=2", "split.folds=3", "split.fold=1"
    )
    result = run_experiment(cfg, say=lambda _: None)
    client = MlflowClient(uri)
    run = client.get_run(result.student_run_id)
    m = run.data.metrics
    assert "train/ldam" in m and "train/ce" not in m  # the kind's LDAM term, logged by its name
    for key in (
        "epochs",
        "max_abs_delta_auc",
        "max_auc_drop",
        "std_auc_last_half",
        "train_loss_min",
        "collapsed_epochs",
    ):
        assert f"stability/{key}" in m, key
    assert m["stability/epochs"] == 3 and m["stability/nonfinite"] == 0
    assert len(client.get_metric_history(run.info.run_id, "dev/collapsed")) == 3
    summary = json.loads(
        Path(client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path))).read_text()
    )
    assert set(summary) >= {
        "auc",
        "accuracy",
        "balanced_accuracy",
        "f1",
        "sensitivity",
        "specificity",
        "confusion_matrix",
    }
    assert summary["classes"] == ["HGG", "LGG"] and summary["positive_class"] == "LGG"
    assert sum(map(sum, summary["confusion_matrix"])) == len(cfg.dataset.tasks) * summary_size(result, client)
    assert run.data.params["split.fold"] == "1" and "data/instances_median" in m


@pytest.mark.slow
def test_mil_run_with_the_paper_objective_logs_its_two_terms_and_its_objective(
    synth_brats, tmp_path, monkeypatch
):
    from pipeline.training.run import run_experiment

    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = _cfg(synth_brats, "student.mil.objective=dsmil", "loss.name=vanilla", "train.student_epochs=2")
    result = run_experiment(cfg, say=lambda _: None)
    client = MlflowClient(uri)
    run = client.get_run(result.student_run_id)
    m = run.data.metrics
    assert {"train/dsmil_max", "train/dsmil_bag", "train/kd"} <= set(m) and "train/ce" not in m
    assert m["train/dsmil_max"] > 0 and m["train/dsmil_bag"] > 0
    assert len(client.get_metric_history(run.info.run_id, "train/dsmil_bag")) == 2
    assert run.data.tags["mil_objective"] == "dsmil" and run.data.params["student.mil.objective"] == "dsmil"
    teacher = client.get_run(result.teacher_run_id)  # the teacher keeps the default objective
    assert teacher.data.tags["mil_objective"] == "mean_ce" and "train/ce" in teacher.data.metrics


def summary_size(result, client) -> int:
    """Test bags of the run (rows of its predictions file)."""
    import io

    import pandas as pd

    path = client.download_artifacts(result.student_run_id, "predictions/test.csv")
    return len(pd.read_csv(io.StringIO(Path(path).read_text())))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["student.mil.name=none"],
            r"student.mil.name: dataset 'synthetic-brats' \(format brats\) needs a MIL model",
        ),
        (["dataset.channels=1"], "dataset.channels: expected one channel per modality"),
        (["dataset.bags.modalities=[flair, t1]", "dataset.channels=3"], "expected one channel per modality"),
    ],
)
def test_bag_config_mismatches_are_one_line(synth_brats, extra, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(synth_brats, *extra)


def test_a_mil_model_needs_bags():
    with pytest.raises(
        ConfigError, match=r"teacher.mil.name: dataset 'synthetic-wound' .* needs mil.name: none"
    ):
        load_experiment("default", ["dataset=synthetic-wound", "teacher.mil.name=dsmil"])
    with pytest.raises(ConfigError, match="train.sampler: weighted sampling needs one multiclass task"):
        load_experiment("default", ["dataset=synthetic-wound", "train.sampler=weighted"])


def test_stability_numbers_follow_their_definitions():
    from pipeline.training.stability import stability_metrics

    def hist(aucs, losses, collapsed=()):
        return [
            {"dev/grade/auc": a, "train/loss": lo, "dev/collapsed": float(e in collapsed)}
            for e, (a, lo) in enumerate(zip(aucs, losses, strict=True))
        ]

    learning = stability_metrics(hist([0.2, 0.5, 0.9, 0.85], [0.7, 0.5, 0.3, 0.3]), "grade/auc")
    assert learning["stability/max_abs_delta_auc"] == pytest.approx(0.4)  # a rise: learning
    assert learning["stability/max_auc_drop"] == pytest.approx(0.05)
    swing = stability_metrics(hist([0.3, 0.9, 0.3, 0.8], [0.7, 150, 1e-4, 0.3], {0, 3}), "grade/auc")
    assert swing["stability/max_auc_drop"] == pytest.approx(0.6)  # the seed's 0.90 -> 0.30
    assert swing["stability/std_auc_last_half"] == pytest.approx(0.25)  # of [0.3, 0.8]
    assert (swing["stability/train_loss_min"], swing["stability/train_loss_max"]) == (1e-4, 150)
    assert swing["stability/collapsed_epochs"] == 2 and swing["stability/nonfinite"] == 0
    assert stability_metrics(hist([0.5, 0.6], [0.7, float("nan")]), "grade/auc")["stability/nonfinite"] == 1
