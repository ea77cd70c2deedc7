"""A study's `teacher_seeds: k`: k teachers, each trained once and distilled into every
configuration and seed (a student that reads no teacher runs once). The sweep itself, and the
loss document's teacher-variance section, run in tests/test_sweep.py's 8-concurrent-trials
sweep (one sweep for both)."""

from __future__ import annotations

import pytest
import yaml

from core.errors import ConfigError
from pipeline.config.identity import teacher_hash
from pipeline.config.study import expand, load_study


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
