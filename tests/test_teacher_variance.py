"""The teacher-variance section in the documents other than the loss study's (the loss study's
is checked on a real sweep in tests/test_sweep.py): hand-made runs of two teachers, each KD
student against each, `none` once."""

from __future__ import annotations

from test_report_runs import parent, student, toy_experiment
from test_report_teacher import teacher

from support import sqlite_store


def test_a_backbone_sweep_with_two_teachers_reports_their_variance(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
    from reports.__main__ import build

    c, exp = toy_experiment()
    ts = {}
    for j, share in enumerate((0.9, 0.7)):
        ts[j] = teacher(c, exp, share, share - 0.05)
        c.set_tag(ts[j], "teacher_seed", str(j))
    trials = []
    # KD helps with teacher 0 (all right against half right), not with teacher 1 (the same)
    for j, share in ((0, 1.0), (1, 0.5)):
        tags = {"vision": "deit", "text": "bert-mini", "teacher_run_id": ts[j], "teacher_seed": str(j)}
        label = f"loss.name=combined teacher_seed={j} seed=0"
        trials.append(
            student(
                c,
                exp,
                "h7",
                "combined",
                "cross_attention",
                (share, share),
                share,
                3.0,
                share,
                tags=tags,
                label=label,
            )
        )
    tags = {"vision": "deit", "text": "bert-mini"}
    trials.append(
        student(
            c,
            exp,
            "h7",
            "none",
            "cross_attention",
            (0.5, 0.5),
            0.6,
            3.0,
            0.5,
            tags=tags,
            label="loss.name=none seed=0",
        )
    )
    parent(c, exp, "students", "backbone", "h7", trials)
    build(tmp_path / "docs")
    text = (tmp_path / "docs" / "backbones.md").read_text()
    part = text.split("### Teacher variance (toy)")[1].split("###")[0]
    assert "Teacher protocol: 2 teachers (teacher seeds 0, 1)" in part
    assert "| teacher 0 | 0.9000 | 0.8500 |" in part and "| teacher 1 | 0.7000 | 0.6500 |" in part
    assert "Teachers' test avg F1 over 2 teachers: 0.8000 ± 0.1414." in part
    assert "| `deit/bert-mini combined` | 1.0000 | 0.5000 | 0.3536 | n/a |" in part
    assert "`deit/bert-mini combined` beats `none` with teacher 0 only" in part
    assert (
        "The best on dev depends on the teacher: teacher 0: `deit/bert-mini combined`, teacher 1: `deit/bert-mini none`."
        in part
    )
