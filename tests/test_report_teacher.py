"""The teacher in the flat studies' tables (issue 28 item 5): its row first and marked, never
ranked; a sentence when no student reaches it and one when it is no better than `none`; dev
beside test; shrunk test models named as such. Stores of hand-made runs whose teacher is clearly
worse than `none`, clearly better than every student, or above `none` within noise."""

from __future__ import annotations

import pandas as pd
import pytest
from test_report_runs import parent, preds, student, toy_experiment

from support import sqlite_store

# the tiny profile's student and teacher as their flattened configs log them (pipeline.config)
SHRUNK_STUDENT = {"student.vision.kwargs.depth": 2, "student.text.config.n_layers": 2}
SHRUNK_TEACHER = {"teacher.vision.kwargs.embed_dim": 96, "teacher.text.config.num_hidden_layers": 2}


def teacher(c, exp, correct: float, dev: float) -> str:
    """A FINISHED teacher run (as pipeline.training.run.ensure_teacher logs one) of seed 0."""
    tags = {"stage": "teacher", "fusion": "cross_attention", "vision": "vit_tiny_patch16_224"}
    tags |= {"text": "bert", "tasks": "a,b", "mlflow.runName": "toy-teacher-cross_attention-s0"}
    rid = c.create_run(exp, tags=tags).info.run_id
    for k, v in {"seed": 0, "teacher.vision.pretrained": False, **SHRUNK_TEACHER}.items():
        c.log_param(rid, k, v)
    metrics = {"test/a/f1": correct, "test/b/f1": correct, "test/avg_f1": correct, "best_dev/avg_f1": dev}
    metrics |= {"test/a/acc": correct, "test/b/acc": correct, "test/a/auc": 0.95, "test/b/auc": 0.85}
    metrics |= {"latency_ms": 9.0, "latency_p90_ms": 10.0, "params": 530_000, "size_mb": 2.0}
    for k, v in metrics.items():
        c.log_metric(rid, k, v)
    c.log_text(rid, preds(correct), "predictions/test.csv")
    c.set_terminated(rid, "FINISHED")
    return rid


CASES = {  # teacher share right; (loss, share right) of the students, best dev first
    "worse": (0.6, [("vanilla", 0.85), ("none", 0.8)]),
    "better": (1.0, [("vanilla", 0.65), ("none", 0.6)]),
    "close": (0.825, [("none", 0.8), ("vanilla", 0.775)]),  # one sample of 40 apart: noise
}


@pytest.fixture(scope="module", params=sorted(CASES))
def docs(request, tmp_path_factory):
    """(case, docs folder) of a loss, a KD and a backbone sweep distilled from one teacher."""
    tmp = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp / "mlflow.db"))
        c, exp = toy_experiment()
        share, students = CASES[request.param]
        tid = teacher(c, exp, share, share - 0.05)
        extra, tags = SHRUNK_STUDENT, {"teacher_run_id": tid}
        trials = [
            student(
                c, exp, "h1", loss, "cross_attention", (r, r), 0.9 - 0.1 * i, 5.0, r, extra=extra, tags=tags
            )
            for i, (loss, r) in enumerate(students)
        ]
        parent(c, exp, "loss", "loss", "h1", trials, seeds=[0])
        kd = student(
            c, exp, "h2", "vanilla", "cross_attention", (0.7, 0.7), 0.7, 5.0, 0.7, tags=tags,
            label="loss.temperature=4.0 loss.alpha=0.5 seed=0", extra={**extra, "loss.alpha": 0.5},
        )  # fmt: skip
        parent(c, exp, "kd", "kd", "h2", [kd], seeds=[0])
        bb = [
            student(c, exp, "h3", loss, "cross_attention", (r, r), r, 3.0, r, extra=extra, tags=tags,
                    label=f"loss.name={loss} seed=0")
            for loss, r in students
        ]  # fmt: skip
        parent(c, exp, "backbone", "backbone", "h3", bb, seeds=[0])
        from reports.__main__ import build

        build(tmp / "docs")
        if request.param == "close":  # rebuilding from the same store gives the same bytes
            build(tmp / "again")
            for p in sorted(q for q in (tmp / "docs").rglob("*") if q.is_file()):
                assert p.read_bytes() == (tmp / "again" / p.relative_to(tmp / "docs")).read_bytes(), p
        yield request.param, tmp / "docs"


def _rows(text: str, header: str) -> list[str]:
    """The rows of the first table whose heading starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    out = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            return out
        out.append(line)
    return out


TEACHER = "teacher (vit_tiny_patch16_224 (shrunk) + bert (shrunk), cross_attention) *"


def test_the_loss_table_starts_with_the_marked_teacher_and_shows_dev(docs):
    case, folder = docs
    text = (folder / "loss_explore.md").read_text()
    rows = _rows(text, "| Run | Loss | Test a F1 | Test b F1 | Test avg F1 | Dev avg F1 | Test infer (ms) |")
    share, students = CASES[case]
    assert rows[0].startswith(f"| {TEACHER} | labels only | ")
    assert f"| {share:.4f} | {share - 0.05:.4f} | 9.00 (p90 10.00) |" in rows[0]  # test, dev beside it
    assert [r.split(" | ")[1] for r in rows[1:]] == [loss for loss, _ in students]  # students by dev
    assert "Run ID" not in text and "| Avg F1 |" not in text
    assert "`*` The teacher the students distilled from (run `toy-teacher-cross_attention-s0`)" in text
    assert (
        "Sizes: teacher vit_tiny_patch16_224 (shrunk) + bert (shrunk): 0.53 M parameters; "
        "students vit (shrunk) + bert (shrunk): 0.10 M parameters." in text
    )
    assert "(shrunk): the named architecture with its depth or width overridden" in text
    # never ranked: the best on dev and the top two are students
    best = students[0][0]
    assert f"- Best on dev: `{best}`" in text
    kd_rows = _rows(text, "| Loss | Δ test avg F1 vs `none` |")
    assert kd_rows[0].startswith("| teacher * | ")  # the teacher against `none`, first
    assert "beat training without distillation: `teacher" not in text


def test_the_two_sentences_follow_the_numbers(docs):
    case, folder = docs
    text = (folder / "loss_explore.md").read_text()
    reach = "- No student reaches the teacher on test: the closest, "
    no_better = "- The teacher is no better than the student trained without distillation (`none`) on test"
    if case == "worse":  # students above a teacher below `none`
        assert reach not in text
        assert no_better in text and ": below it beyond noise): distilling it has nothing shown" in text
    elif case == "better":
        assert reach + "`loss.name=vanilla`, has test avg F1 0.6500 against the teacher's 1.0000." in text
        assert no_better not in text
    else:  # 0.825 against 0.8: one sample of 40, within the interval
        assert reach + "`loss.name=none`, has test avg F1 0.8000 against the teacher's 0.8250." in text
        assert no_better + " (test avg F1 difference +0.02" in text
        assert "within noise): distilling it has nothing shown to pass on." in text


def test_not_recommended_says_which_rule_it_applies(docs):
    case, folder = docs
    text = (folder / "loss_explore.md").read_text()
    if case == "close":  # vanilla one sample below `none`: within noise, not a "fell below"
        assert (
            "- **Not recommended:** no loss collapsed, and none is below `none` by more than noise "
            "(`vanilla` below it within noise)." in text
        )
    assert "nothing collapsed or fell below" not in text


def test_kd_and_backbone_documents_show_the_teacher(docs):
    case, folder = docs
    share, students = CASES[case]
    kd = (folder / "kd_sensitivity.md").read_text()
    assert f"{TEACHER}: test avg F1 {share:.4f}, dev avg F1 {share - 0.05:.4f}." in kd
    assert _rows(kd, "| τ | α | Δ test avg F1 vs `none` |")[0].startswith("| teacher * |  | ")
    bb = (folder / "backbones.md").read_text()
    rows = _rows(bb, "| Vision | Text | Loss | Test avg F1 | Dev avg F1 |")
    assert rows[0].startswith(
        f"| teacher *: vit_tiny_patch16_224 (shrunk) | bert (shrunk) | labels only | {share:.4f} | {share - 0.05:.4f} |"
    )
    assert rows[0].endswith("| 0.53 | 2.00 | 9.00 (p90 10.00) | n/a |")
    assert rows[1].startswith("| vit (shrunk) | bert (shrunk) | ")
    retention = f"{students[0][1] / share:.3f}"
    assert rows[1].endswith(f"| {retention} |")  # still its own teacher's share


def test_results_csv_names_shrunk_backbones(docs):
    df = pd.read_csv(docs[1] / "results.csv", dtype=str, keep_default_na=False)
    assert list(df.columns[-2:]) == ["parameters", "shrunk"]
    assert set(df["shrunk"]) == {"vision+text"} and set(df["parameters"]) == {"100000"}
    assert set(df["vision_backbone"]) == {"vit"}  # the configured name stays a plain name


def test_a_fusion_sweep_shows_each_of_its_teachers(tmp_path, monkeypatch):
    """A fusion study varies the teacher's fusion with the student's: one teacher per fusion,
    each on its own marked row, before the students, with its own numbers."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
    c, exp = toy_experiment()
    trials = []
    for fusion, share, dev in (("gated", 0.9, 0.95), ("film", 0.7, 0.9)):
        tid = teacher(c, exp, share, share - 0.05)
        c.set_tag(tid, "fusion", fusion)
        trials.append(
            student(
                c,
                exp,
                "h2",
                "vanilla",
                fusion,
                (0.8, 0.8),
                dev,
                5.0,
                0.8,
                tags={"teacher_run_id": tid},
                label=f"fusion.name={fusion} layers=1 seed=0",
            )  # fmt: skip
        )
    parent(c, exp, "fusion", "fusion", "h2", trials, seeds=[0])
    from reports.__main__ import build

    build(tmp_path / "docs")
    text = (tmp_path / "docs" / "toy_fusion_hp_summary.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| teacher (")]
    assert len(rows) == 2, text
    assert rows[0].startswith("| teacher (vit_tiny_patch16_224 (shrunk) + bert (shrunk), gated) * |")
    assert "teacher of `fusion.name=gated layers=1` | 0.850 | 0.900 |" in rows[0]
    assert rows[1].startswith("| teacher (vit_tiny_patch16_224 (shrunk) + bert (shrunk), film) * |")
    assert "teacher of `fusion.name=film layers=1` | 0.650 | 0.700 |" in rows[1]
    students = [line for line in text.splitlines() if line.startswith(("| gated", "| film"))]
    assert text.index(rows[1]) < text.index(students[0])  # the teachers come first
