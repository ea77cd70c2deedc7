"""A study's `teacher_seeds: k`: k teachers, each trained once and distilled into every
configuration and seed (a student that reads no teacher runs once), and the loss document's
teacher-variance section, on a real Ray Tune sweep into a real MLflow store."""

from __future__ import annotations

import pytest
import yaml
from mlflow.tracking import MlflowClient

from core.errors import ConfigError
from pipeline.config.identity import teacher_hash
from pipeline.config.study import expand, load_study
from support import runs_by_stage, sqlite_store, tiny_overrides


def _study(tmp_path, **kw):
    path = tmp_path / "study.yaml"
    path.write_text(
        yaml.safe_dump({"experiment": "default", "space": {"loss.name": ["none", "vanilla"]}, **kw})
    )
    return path


def test_k_teachers_expand_every_student_against_each_and_none_once(tmp_path):
    study, _ = load_study(_study(tmp_path, seeds=[0, 1], teacher_seeds=3))
    trials = expand(study, ["dataset=synthetic-wound"])
    got = sorted((t.point["loss.name"], t.point.get("teacher_seed", -1), t.seed) for t in trials)
    assert got == [("none", -1, 0), ("none", -1, 1)] + [("vanilla", j, s) for j in range(3) for s in (0, 1)]
    assert all(t.cfg.teacher_seed is None for t in trials if t.point["loss.name"] == "none")
    hashes = {
        t.point["teacher_seed"]: teacher_hash(t.cfg) for t in trials if t.point["loss.name"] == "vanilla"
    }
    assert len(set(hashes.values())) == 3  # one teacher per teacher seed, shared by the student seeds
    (tmp_path / "p").mkdir()
    plain, _ = load_study(_study(tmp_path / "p", seeds=[0]))
    (vanilla0,) = [t for t in expand(plain, ["dataset=synthetic-wound"]) if t.point["loss.name"] == "vanilla"]
    assert teacher_hash(vanilla0.cfg) == hashes[0]  # teacher 0 is the plain study's seed-0 teacher: reused


@pytest.mark.parametrize(
    "extra", [{"search": {"algorithm": "optuna", "num_samples": 2}}, {"cv": {"folds": 2}}]
)
def test_several_teachers_take_a_plain_grid(tmp_path, extra):
    with pytest.raises(ConfigError, match="teacher_seeds"):
        load_study(_study(tmp_path, teacher_seeds=2, **extra))


def test_a_sweep_with_two_teachers_reports_their_variance(tmp_path, synth_wound, monkeypatch, local_ray):
    from pipeline.sweeps.sweep import run_sweep
    from reports.__main__ import build

    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    done = run_sweep(
        str(_study(tmp_path, seeds=[0], teacher_seeds=2)),
        tiny_overrides(synth_wound, epochs=1),
        say=lambda s: None,
    )
    assert sorted(r.status for r in done.rows) == ["FINISHED"] * 3 and done.teachers_trained == 2
    client = MlflowClient(uri)
    teachers = {r.data.tags["teacher_seed"]: r.info.run_id for r in runs_by_stage(client, "teacher")}
    assert sorted(teachers) == ["0", "1"]
    students = runs_by_stage(client, "student")
    read = {
        (r.data.tags["loss"], r.data.tags.get("teacher_seed")): r.data.tags.get("teacher_run_id")
        for r in students
    }
    assert read[("vanilla", "0")] == teachers["0"] and read[("vanilla", "1")] == teachers["1"]
    assert [k for k in read if k[0] == "none"] == [("none", None)]  # once, not once per teacher
    build(tmp_path / "docs")
    text = (tmp_path / "docs" / "loss_explore.md").read_text()
    part = text.split("### Teacher variance (synthetic-wound)")[1].split("###")[0]
    assert "Teacher protocol: 2 teachers (teacher seeds 0, 1), each trained once" in part
    assert "| teacher 0 |" in part and "| teacher 1 |" in part
    assert (
        "Teachers' test avg F1 over 2 teachers:" in part and " ± " in part.split("Teachers' test avg F1")[1]
    )
    assert "| `vanilla` |" in part and "`none`" not in part.split("| Configuration |")[1].split("\n\n")[0]
    assert "beats `none`" in part or "shown to beat `none`" in part
    assert "| `vanilla` |" in part and (
        "Best on dev with every teacher" in part or "depends on the teacher" in part
    )
