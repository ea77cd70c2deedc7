"""The report stage, from a tmp MLflow database of hand-made runs with known metrics."""

from __future__ import annotations

import pytest
from test_report_runs import parent as _parent
from test_report_runs import student as _student
from test_report_runs import toy_experiment

from support import sqlite_store


@pytest.fixture(scope="module", params=[True, False], ids=["clear-winner", "no-clear-winner"])
def store(request, tmp_path_factory):
    """A database of hand-made runs (built once per module and parameter)."""
    tmp_path = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
        clear = _fill(request.param)
        yield clear, _build(tmp_path)
        if request.param:  # rebuilding gives byte-identical files
            again = _build(tmp_path, "again")
            for path in sorted(p for p in (tmp_path / "docs").rglob("*") if p.is_file()):
                assert path.read_bytes() == (again / path.relative_to(tmp_path / "docs")).read_bytes(), path


def _fill(clear: bool) -> bool:

    c, exp = toy_experiment()
    trials = [
        _student(c, exp, "h1", "combined", "cross_attention", (0.9, 0.8), 0.90, 7.0, 1.0),
        _student(c, exp, "h1", "vanilla", "cross_attention", (0.85, 0.75), 0.85, 5.0, 0.5 if clear else 1.0),
        _student(c, exp, "h1", "none", "cross_attention", (0.8, 0.7), 0.80, 5.5, 0.8),
        _student(c, exp, "h1", "crd", "cross_attention", (0.5, 0.52), 0.50, 6.0, 0.5),
        {
            "label": "loss.name=rkd seed=0",
            "status": "FAILED",
            "dev": None,
            "test_avg_f1": None,
            "run_id": None,
            "error": "NonFiniteLoss: non-finite loss at epoch 1",
        },
    ]
    killed = c.create_run(
        exp, tags={"stage": "student", "sweep_hash": "h1", "mlflow.runName": "toy-cross_attention-mmd-s0"}
    )
    c.set_tag(killed.info.run_id, "failure_reason", "interrupted")
    c.set_terminated(killed.info.run_id, "KILLED")
    _parent(c, exp, "loss", "loss", "h1", trials)
    fusion = [
        _student(
            c,
            exp,
            "h2",
            "vanilla",
            "gated",
            (0.70, 0.90),
            0.95,
            5.0,
            0.9,
            label="fusion.name=gated layers=1 seed=0",
        ),
        _student(
            c,
            exp,
            "h2",
            "vanilla",
            "gated",
            (0.95, 0.95),
            0.60,
            5.0,
            0.9,
            label="fusion.name=gated layers=2 seed=0",
        ),
        _student(
            c,
            exp,
            "h2",
            "vanilla",
            "film",
            (0.80, 0.60),
            0.90,
            5.0,
            0.9,
            label="fusion.name=film layers=1 seed=0",
        ),
    ]
    _parent(c, exp, "fusion", "fusion", "h2", fusion)
    kd = []
    for t, a, f1 in [(2.0, 0.5, 0.70), (2.0, 0.9, 0.72), (4.0, 0.5, 0.80), (4.0, 0.9, 0.74)]:
        kd.append(
            _student(
                c,
                exp,
                "h3",
                "vanilla",
                "cross_attention",
                (f1, f1),
                f1,
                5.0,
                0.9,
                label=f"loss.temperature={t} loss.alpha={a} seed=0",
                extra={"loss.temperature": t, "loss.alpha": a},
            )
        )
    kd.append(
        _student(
            c,
            exp,
            "h3",
            "vanilla",
            "cross_attention",
            (0.84, 0.84),
            0.82,
            5.0,
            0.9,
            seed=1,
            label="loss.temperature=4.0 loss.alpha=0.5 seed=1",
            extra={"loss.temperature": 4.0, "loss.alpha": 0.5},
        )
    )
    _parent(c, exp, "kd", "kd", "h3", kd)
    teacher = c.create_run(exp, tags={"stage": "teacher", "mlflow.runName": "toy-teacher"})
    c.log_metric(teacher.info.run_id, "test/avg_f1", 0.9)
    c.set_terminated(teacher.info.run_id, "FINISHED")
    bb = [
        _student(
            c,
            exp,
            "h4",
            "vanilla",
            "cross_attention",
            (0.72, 0.72),
            0.7,
            3.0,
            0.9,
            label="student.vision=cnn seed=0",
            tags={"vision": "cnn", "teacher_run_id": teacher.info.run_id},
        ),
        _student(
            c,
            exp,
            "h4",
            "vanilla",
            "cross_attention",
            (0.81, 0.81),
            0.8,
            9.0,
            0.9,
            label="student.vision=vit seed=0",
            tags={"teacher_run_id": teacher.info.run_id},
        ),
    ]
    _parent(c, exp, "backbone", "backbone", "h4", bb)
    return clear


def _build(tmp_path, name="docs"):
    from reports.__main__ import build

    out = tmp_path / name
    build(out)
    return out


def test_loss_document_cells_and_recommendation(store):
    store, docs = store
    text = (docs / "loss_explore.md").read_text()
    assert text.startswith("<!-- Generated by `make report` from sqlite:///")
    assert (
        "| `toy-cross_attention-combined-s0` | combined | 0.9000 | 0.8000 | 0.8500 | 0.9000 | 7.00 (p90 8.00) |"
        in text
    )
    rows = [line for line in text.splitlines() if line.startswith("| `toy")]
    assert [r.split("|")[2].strip() for r in rows] == ["combined", "vanilla", "none", "crd"]  # by dev F1
    assert "- Task 1: `a` (label field `FieldA`)" in text
    assert "- Latency: every student here has the same architecture, so the spread (5.00-7.00 ms)" in text
    assert "- Collapsed: `crd` (test avg F1 0.5100, within 0.05 of chance)." in text
    assert "- Below the no-KD baseline: `crd`" in text
    if store:
        assert "`loss.name=combined` is better on test" in text
        assert "- **Best choice:** `combined` (best on dev, and apart from the runner-up on test)." in text
        assert "- **Not recommended:** `crd`, `vanilla`." in text  # vanilla's predictions: half right
    else:
        assert "no clear winner: the interval contains 0" in text
        assert "- **Best choice:** no clear winner between `combined` and `vanilla`." in text
        assert "- **Not recommended:** `crd`." in text
    assert "Safe baseline" not in text
    assert (
        "| toy | loss | `loss.name=rkd seed=0` | no FINISHED run | NonFiniteLoss: non-finite loss at epoch 1 |"
        in text
    )
    assert "| toy | loss | `toy-cross_attention-mmd-s0` | KILLED | interrupted |" in text


def test_fusion_summary_picks_best_on_dev_and_bolds_column_best(store):
    text = (store[1] / "toy_fusion_hp_summary.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| gated") or line.startswith("| film")]
    assert len(rows) == 2  # one row per fusion type, at its best dev configuration (layers=1 for gated)
    assert rows[0].startswith("| gated | `fusion.name=gated layers=1` | ")
    assert "**0.900**" in rows[0] and "**0.800**" in rows[1]  # best of each column in bold


def test_kd_sensitivity_grid_seeds_and_kd_help(store):
    text = (store[1] / "kd_sensitivity.md").read_text()
    assert "| τ \\ α | 0.50 | 0.90 |" in text
    # one configuration has two seeds, the others one of the two: the cells say so
    assert "| 2.0 | 0.7000 (1 of 2 seeds) | 0.7200 (1 of 2 seeds) |" in text
    assert "| 4.0 | 0.8200 ± 0.0283 | 0.7400 (1 of 2 seeds) |" in text  # two seeds: mean ± std
    assert "Baseline (no KD, loss sweep): test avg F1 0.7500." in text
    # best and "does KD help" on seed 0, the seed every configuration has (0.80 on it, not 0.82)
    assert "Best on dev: τ=4.0, α=0.5 (dev avg F1 0.8000, test 0.8000; seed 0)." in text
    assert "over seed 0, paired by seed and test sample" in text
    assert "| 4.0 | 0.5 | +0.1000 | [+0." in text  # predictions 90 % vs 80 % right
    # alone, each +0.1000 has an interval above 0; as the table's four comparisons, each bootstrap
    # p (0.034) Holm-adjusted is 4 x 0.034 = 0.136: none is shown to beat `none`
    assert "| 2.0 | 0.5 | +0.1000 | [+0.0245, +0.2043] | 0.136 | within noise (adjusted p ≥ 0.05) |" in text
    assert "The 4 p-values are Holm-adjusted as one family" in text
    assert "**No τ, α setting is shown to beat training without distillation** (`none`)" in text
    assert "![τ x α heatmap](img/toy_kd_heatmap.png)" in text


def test_backbones_retention_and_parent_artifacts(store):
    text = (store[1] / "backbones.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "|---" not in line]
    assert rows[1].startswith("| teacher *: ? | ? | 0.9000 | n/a |")  # its test F1, first, marked
    assert rows[2] == "| vit | bert | 0.8100 | 0.8000 | 0.8500 | 0.10 | 1.00 | 9.00 (p90 10.00) | 0.900 |"
    assert rows[3] == "| cnn | bert | 0.7200 | 0.7000 | 0.8500 | 0.10 | 1.00 | 3.00 (p90 4.00) | 0.800 |"
    from pipeline import tracking

    parents = tracking.runs_frame("tags.stage = 'sweep'")
    assert len(parents) == 4
    index = (store[1] / "index.md").read_text()
    assert all(f"`{rid}`" in index for rid in parents["run_id"])


def test_results_csv_has_template_columns(store):
    lines = (store[1] / "results.csv").read_text().splitlines()
    assert lines[0].startswith(
        "run_id,date,phase,model_name,vision_backbone,text_backbone,attention_type,kd_temperature,kd_alpha"
    )
    assert len(lines) == 1 + 4 + 3 + 5 + 2  # one row per FINISHED student run
    assert "results.csv is generated by `make report`" in (store[1] / "index.md").read_text()


def test_empty_database_gives_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    from reports.__main__ import main

    assert main(["--out", str(tmp_path / "docs")]) == 0
    assert "no FINISHED sweep" in capsys.readouterr().out
    assert "nothing to report" in (tmp_path / "docs" / "index.md").read_text()


def test_latest_sweep_by_default_and_sweep_id_picks_another(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
    from reports.query import sweeps

    c, exp = toy_experiment()
    old = _parent(
        c,
        exp,
        "loss",
        "loss",
        "h1",
        [_student(c, exp, "h1", "none", "cross_attention", (0.5, 0.5), 0.5, 1, 0.5)],
    )
    new = _parent(
        c,
        exp,
        "loss",
        "loss",
        "h1",
        [_student(c, exp, "h1", "vanilla", "cross_attention", (0.6, 0.6), 0.6, 1, 0.5)],
    )
    assert [s.run_id for s in sweeps()] == [new]
    assert [s.run_id for s in sweeps(old)] == [old]
    from reports.__main__ import build

    build(tmp_path / "docs", log_figures=True)  # what a sweep does at its end
    # one architecture: no Pareto plot (its latencies differ by noise only)
    assert {a.path for a in c.list_artifacts(new, "report")} == {"report/toy_loss_f1.png"}


def test_bootstrap_macro_f1_is_sklearns_on_every_resample():
    """The vectorised scorer of all resamples at once gives sklearn's macro-F1 (zero_division=0,
    classes present in the resample's labels or predictions) on each one."""
    import numpy as np
    from sklearn.metrics import f1_score

    from reports.resample import _macro_f1

    rng = np.random.default_rng(3)
    for _ in range(50):
        n, k = int(rng.integers(5, 40)), int(rng.integers(2, 6))
        y, p = rng.integers(0, k, n), rng.integers(0, k, n)
        rows = rng.integers(0, n, (8, n))
        weights = np.stack([np.bincount(r, minlength=n) for r in rows]).astype(float)
        got = _macro_f1(y, p, weights)
        want = [f1_score(y[r], p[r], average="macro", zero_division=0) for r in rows]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
