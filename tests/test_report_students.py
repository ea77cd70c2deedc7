"""docs/backbones.md for a sweep that varies the loss too (sweeps/students.yaml: each student with
KD and without): a Loss column tells the KD and no-KD rows of one backbone pair apart."""

from __future__ import annotations

from test_report_runs import parent, student, toy_experiment

from support import sqlite_store


def test_a_backbone_sweep_over_losses_gets_a_loss_column(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
    from reports.__main__ import build

    c, exp = toy_experiment()
    pair = {"vision": "mobilevit_xxs", "text": "prajjwal1/bert-mini"}
    trials = [
        student(
            c,
            exp,
            "h5",
            loss,
            "cross_attention",
            (f1, f1),
            f1,
            3.0,
            0.9,
            tags=pair,
            label=f"loss.name={loss} seed=0",
        )
        for loss, f1 in (("combined", 0.82), ("none", 0.75))
    ]
    parent(c, exp, "students", "backbone", "h5", trials)
    build(tmp_path / "docs")
    text = (tmp_path / "docs" / "backbones.md").read_text()
    assert "| Vision | Text | Loss | Test avg F1 |" in text
    assert "| mobilevit_xxs | prajjwal1/bert-mini | combined | 0.8200 |" in text
    assert "| mobilevit_xxs | prajjwal1/bert-mini | none | 0.7500 |" in text
