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


PARTS = {"params/vision": 5e4, "params/text": 3e4, "params/proj_image": 4e3, "params/proj_text": 4e3}
PARTS |= {"params/fusion": 8e3, "params/heads": 1e3, "params": 1e5}


def test_kd_against_no_kd_per_architecture_mcnemar_and_compression(tmp_path, monkeypatch):
    """Two architectures, each with KD and without: KD helps the first beyond noise (every test
    sample right against half), not the second (the same predictions); the McNemar table tests the
    teacher against the chosen student, the chosen against the runner-up and KD against no-KD per
    architecture, Holm-adjusted; the compression table reads the per-part counts."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
    from test_report_teacher import teacher

    from reports.__main__ import build

    c, exp = toy_experiment()
    t0 = teacher(c, exp, 0.9, 0.8)
    for part, n in {
        "vision": 4e5,
        "text": 1e5,
        "proj_image": 1e4,
        "proj_text": 1e4,
        "fusion": 8e3,
        "heads": 2e3,
    }.items():
        c.log_metric(t0, f"params/{part}", n)  # 530k in all, as the teacher logs (test_report_teacher)
    archs = {"mobilevit_xxs": (1.0, 0.5), "deit_tiny_patch16_224": (0.75, 0.75)}  # (KD, none) right
    trials = []
    for i, (vision, shares) in enumerate(archs.items()):
        for loss, share in zip(("combined", "none"), shares, strict=True):
            tags = {"vision": vision, "text": "prajjwal1/bert-mini", "teacher_run_id": t0}
            f1 = share  # F1 follows the share right on these balanced toy labels
            dev = share - 0.01 * i
            trials.append(
                student(
                    c,
                    exp,
                    "h6",
                    loss,
                    "cross_attention",
                    (f1, f1),
                    dev,
                    3.0,
                    share,
                    tags=tags,
                    label=f"student.vision={vision} loss.name={loss} seed=0",
                    more=PARTS,
                )
            )
    parent(c, exp, "students", "backbone", "h6", trials)
    build(tmp_path / "docs")
    text = (tmp_path / "docs" / "backbones.md").read_text()
    kd = text.split("### Does KD help each architecture? (toy)")[1].split("###")[0]
    assert "the 2 p-values Holm-adjusted" in kd
    assert "| mobilevit_xxs | prajjwal1/bert-mini | `combined` | +0.5000 |" in kd
    assert "| deit_tiny_patch16_224 | prajjwal1/bert-mini | `combined` | +0.0000 |" in kd
    assert "KD helps beyond noise for: mobilevit_xxs/prajjwal1/bert-mini." in kd
    assert "Within noise: deit_tiny_patch16_224/prajjwal1/bert-mini." in kd
    mc = text.split("### McNemar tests (toy)")[1].split("###")[0]
    rows = [line for line in mc.splitlines() if line.startswith("| ") and "Comparison" not in line]
    # teacher vs chosen, chosen vs runner-up, and two KD vs none: 4 comparisons x 2 tasks, seed 0
    assert len(rows) == 8 and "over the 8 comparisons of this table" in mc
    # mobilevit KD (all right) against its none (first half right): b = 0, c = 20 the other way round
    kd_row = next(
        r
        for r in rows
        if "| mobilevit_xxs/prajjwal1/bert-mini combined vs mobilevit_xxs/prajjwal1/bert-mini none | a |" in r
    )
    cells = [x.strip() for x in kd_row.split("|")[1:-1]]
    assert cells[3:6] == ["20", "0", "+0.5000"]
    assert cells[7] == "< 0.001" and cells[-1].endswith("more accurate")
    twin = next(
        r
        for r in rows
        if "| deit_tiny_patch16_224/prajjwal1/bert-mini combined vs deit" in r and "| a |" in r
    )
    assert [x.strip() for x in twin.split("|")[4:6]] == ["0", "0"] and "no evidence" in twin
    comp = text.split("### Compression (toy)")[1].split("###")[0]
    assert "| Model | Vision (M) | Text (M) | Fusion (M) | Heads (M) | Params (M) |" in comp  # no Other
    assert "| mobilevit_xxs/prajjwal1/bert-mini combined | 0.050 | 0.030 | 0.016 | 0.001 | 0.100 |" in comp
    assert "| 5.3× | 1.0000 | 10.000 |" in comp  # 530k / 100k; F1 1.0 per 0.1 M parameters
    assert "| teacher * | 0.400 | 0.100 | 0.028 | 0.002 | 0.530 | 2.00 | 1.0× | 0.9000 | 1.698 |" in comp
