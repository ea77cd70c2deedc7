"""The X-Lite study's machinery end to end, at smoke size: a phased study with an alpha = 0
control of the KD choice, cross-validation and a refit on a synthetic ChestX-ray14 folder, through
real Ray Tune trials into a real MLflow store, then the report. (The full `make sweep-xlite` is
timed by `make bench`.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from support import runs_by_stage, sqlite_store

pytestmark = pytest.mark.slow

PLAN = [
    {
        "name": "baseline",
        "id": "BASELINE",
        "overrides": ["loss.name=none", "student.vision.attention=none"],
        "space": {"student.vision.name": ["mobilenetv3_small_050"]},
    },
    {
        "name": "distillation",
        "id": "KD",
        "overrides": ["loss.name=xlite_kd"],
        "space": {"loss.temperature": [4], "loss.alpha": [0.7, 0.5]},
    },
    {"name": "kd_control", "id": "CONTROL", "best_of": ["distillation"], "overrides": ["loss.alpha=0"]},
    {
        "name": "sensitivity_tau",
        "id": "TAU",
        "best_of": ["distillation"],
        "space": {"loss.temperature": [2, 4]},
    },
    {
        "name": "cv",
        "id": "CV",
        "best_of": ["baseline", "distillation", "sensitivity_tau"],
        "cv": {"folds": 2},
    },
    {
        "name": "final",
        "id": "FINAL",
        "best_of": ["baseline", "distillation", "sensitivity_tau"],
        "refit": True,
    },
]


def test_phased_study_with_cv_and_refit(tmp_path, monkeypatch, local_ray):
    from pipeline.data.synth.chestxray import generate_chestxray

    root = tmp_path / "cx"
    generate_chestxray(root, n_patients=40, image_size=32, seed=0)
    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    study = tmp_path / "xlite-smoke.yaml"
    data = {"experiment": "xlite", "report": "xlite", "metric": "dev/findings/auc", "phases": PLAN}
    study.write_text(yaml.safe_dump(data, sort_keys=False))
    overrides = [
        f"dataset.root={root}",
        "teacher.vision.image_size=32",
        "student.vision.image_size=32",
        "train.teacher_epochs=1",
        "train.student_epochs=1",
        "train.latency_runs=3",
        "train.device=cpu",
    ]
    from pipeline.sweeps.sweep import run_sweep
    from reports.__main__ import build

    result = run_sweep(str(study), overrides, say=lambda s: None)
    client = MlflowClient(uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and "failure_reason" not in parent.data.tags
    assert parent.data.tags["study_kind"] == "xlite"
    rows = {(r.exp_id, r.fold): r for r in result.rows}
    assert [(r.phase, r.exp_id) for r in result.rows if r.fold in (None, 0)] == [
        ("baseline", "BASELINE_001"),
        ("distillation", "KD_001"),
        ("distillation", "KD_002"),
        ("kd_control", "CONTROL_001"),
        ("sensitivity_tau", "TAU_001"),
        ("sensitivity_tau", "TAU_002"),
        ("cv", "CV_001"),
        ("final", "FINAL_001"),
    ]
    assert all(r.status.startswith("FINISHED") for r in result.rows), [
        (r.label, r.error) for r in result.rows
    ]
    # the sensitivity phase starts from the KD configuration best on dev, never on test ...
    phases = {p["name"]: p for p in result.phases}
    kd = [rows[("KD_001", None)], rows[("KD_002", None)]]
    best = max(kd, key=lambda r: r.dev)
    assert phases["sensitivity_tau"]["chosen"]["exp_id"] == best.exp_id
    # ... and its tau=4 point is that very run, listed again, not trained again
    assert rows[("TAU_002", None)].status == "FINISHED earlier"
    assert rows[("TAU_002", None)].run_id == best.run_id
    chosen = phases["final"]["chosen"]["exp_id"]
    assert phases["cv"]["chosen"]["exp_id"] == chosen
    # every fold is a child run tagged `fold`, with a teacher of its own; the refit has its own too
    students = {r.info.run_id: r for r in runs_by_stage(client, "student")}
    teachers = {r.info.run_id: r for r in runs_by_stage(client, "teacher")}
    folds = [students[rows[("CV_001", f)].run_id] for f in (0, 1)]
    assert [r.data.tags["fold"] for r in folds] == ["0", "1"]
    assert [r.data.params["split.fold"] for r in folds] == ["0", "1"]
    fold_teachers = {r.data.tags.get("teacher_run_id") for r in folds}
    final = students[rows[("FINAL_001", None)].run_id]
    assert final.data.params["split.refit"] == "True" and final.data.tags["phase"] == "final"
    phase_teacher = students[best.run_id].data.tags["teacher_run_id"]
    if chosen != "BASELINE_001":
        assert len(fold_teachers | {final.data.tags.get("teacher_run_id"), phase_teacher}) == 4
        assert len(teachers) == 4
    else:  # the baseline distils from nothing: no teacher is trained for its folds or its refit
        assert all("teacher_run_id" not in r.data.tags for r in [*folds, final]) and len(teachers) == 1
    assert all(t.data.tags.get("fold") in (None, "0", "1") for t in teachers.values())
    # the control: the KD choice on dev at alpha 0, same student and seed, the same teacher (reused)
    assert phases["kd_control"]["chosen"]["exp_id"] == best.exp_id
    control, kd_run = students[rows[("CONTROL_001", None)].run_id], students[best.run_id]
    assert control.data.params["loss.alpha"] == "0.0" and kd_run.data.params["loss.alpha"] != "0.0"
    for key in ("loss.name", "loss.label_loss", "student.vision.name", "student.vision.attention", "seed"):
        assert control.data.params[key] == kd_run.data.params[key], key
    assert control.data.tags["teacher_run_id"] == phase_teacher
    assert "best_train/findings/auc" in final.data.metrics  # train AUC per disease for the final table
    assert all(r.info.status == "FINISHED" for r in [*students.values(), *teachers.values()])
    trials = json.loads(
        Path(client.download_artifacts(result.parent_run_id, "trials.json", str(tmp_path))).read_text()
    )
    assert {t["phase"] for t in trials} == {p["name"] for p in PLAN}
    # resume: the same command again runs nothing new
    again = run_sweep(str(study), overrides, say=lambda s: None)
    assert all(r.status == "FINISHED earlier" for r in again.rows)
    assert len(runs_by_stage(client, "student")) == len(students)
    build(tmp_path / "docs")
    doc = (tmp_path / "docs" / "xlite_experiments.md").read_text()
    for section in (
        "KD_001",
        "does KD help?",
        "KD against its control",
        "(KD − control)",
        "Cross-validation",
        "MACRO AVG",
    ):
        assert section in doc, section
    header = (tmp_path / "docs" / "xlite_results.csv").read_text().splitlines()[0]
    assert header.startswith("experiment_id,date,phase,model_name,cnn_backbone,attention_type")
