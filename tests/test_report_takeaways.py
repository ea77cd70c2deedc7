"""What the documents say follows from the numbers (issue 11 points 1 to 5): no fixed "safe"
loss, whether KD helps against `none`, error bars only from two or more seeds, Pareto fronts only
across architectures on an honest y-axis, and chance level from the test label counts."""

from __future__ import annotations

import numpy as np
import pytest
from test_report_runs import loss_sweep, parent, preds, student, toy_experiment

from support import sqlite_store


@pytest.fixture
def tmp_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
    return tmp_path


def _loss_doc(tmp_path) -> str:
    from reports.__main__ import build

    build(tmp_path / "docs")
    return (tmp_path / "docs" / "loss_explore.md").read_text()


def test_1_no_fixed_safe_baseline_when_none_wins(tmp_store):
    loss_sweep([("none", 0, 0.9, 1.0), ("vanilla", 0, 0.7, 0.6), ("combined", 0, 0.6, 0.55)])
    text = _loss_doc(tmp_store)
    assert "Safe baseline" not in text
    assert "- **Best choice:** `none` (best on dev, and apart from the runner-up on test)." in text
    assert "- **KD vs no KD:** no loss is shown to beat training without distillation (`none`)." in text
    assert "- **Not recommended:** `combined`, `vanilla`." in text  # both clearly below `none`


def test_2_each_loss_against_none_and_a_plain_no(tmp_store):
    # one test sample apart out of 40: every paired interval contains 0
    loss_sweep([("combined", 0, 0.9, 0.825), ("none", 0, 0.8, 0.8), ("vanilla", 0, 0.7, 0.775)])
    text = _loss_doc(tmp_store)
    assert "### Does KD help? (toy)" in text
    rows = [line for line in text.splitlines() if line.startswith(("| `combined` |", "| `vanilla` |"))]
    assert [r.split(" | ")[1][:4] for r in rows] == ["+0.0", "-0.0"]  # one sample of 40: 0.025
    # the table's two comparisons (combined, vanilla against none; no teacher run): Holm-adjusted p
    assert all(r.endswith("| within noise (adjusted p ≥ 0.05) |") for r in rows)
    assert "The 2 p-values are Holm-adjusted as one family" in text
    assert (
        "**No loss is shown to beat training without distillation** (`none`): no difference lies above 0 "
        "beyond noise after the Holm adjustment." in text
    )


def test_3_error_bars_only_with_two_or_more_seeds(tmp_store, monkeypatch):
    from matplotlib.axes import Axes

    calls = []
    bar = Axes.bar
    monkeypatch.setattr(Axes, "bar", lambda self, *a, **k: (calls.append(k), bar(self, *a, **k))[1])
    loss_sweep([("combined", 0, 0.9, 0.9), ("none", 0, 0.8, 0.8)])
    text = _loss_doc(tmp_store)
    assert "Test avg F1 per loss (1 seed (seed 0): no error bars)." in text
    assert len(calls) == 1 and "yerr" not in calls[0]

    from reports.plots import f1_bars

    calls.clear()
    f1_bars(["a", "b"], [[0.8, 0.9], [0.7, 0.7]], (0, 1), 0.5, "t", tmp_store / "two.png")
    assert calls[0]["yerr"] == pytest.approx([np.std([0.8, 0.9], ddof=1), 0.0])


def test_4_pareto_only_across_architectures_with_the_interval_on_the_axis(tmp_store, monkeypatch):
    loss_sweep([("combined", 0, 0.9, 0.9), ("none", 0, 0.8, 0.8)])
    text = _loss_doc(tmp_store)
    assert "_pareto.png" not in text and not list((tmp_store / "docs" / "img").glob("*pareto*"))

    from reports.plots import charts

    figs = []
    monkeypatch.setattr(charts, "draw", lambda build, path, *a: figs.append(build(*a)) or "img/x.png")
    charts.pareto_plot(
        ["cnn", "vit"], [3.0, 9.0], [(0.80, 0.70, 0.90), (0.81, 0.72, 0.91)], "t", tmp_store / "p.png"
    )
    lo, hi = figs[0].axes[0].get_ylim()
    assert lo <= 0.70 and hi >= 0.91  # not a 0.80-0.81 zoom: the intervals' width is on the axis


def test_5_chance_is_the_expected_f1_of_uniform_guessing_given_the_label_counts(tmp_store):
    from reports.stats import uniform_guess_f1

    labels = [0] * 30 + [1] * 10  # imbalanced: the expected macro-F1 is below 1/K = 0.5
    c, exp = toy_experiment()
    trials = [
        student(c, exp, "h1", loss, "cross_attention", (f, f), f, 5.0, preds(f, labels))
        for loss, f in (("combined", 0.9), ("none", 0.8))
    ]
    parent(c, exp, "loss", "loss", "h1", trials)
    text = _loss_doc(tmp_store)
    level = uniform_guess_f1(np.array(labels), 2)
    assert level < 0.47
    assert f"(expected value under uniform guessing, given the test label counts): {level:.4f}." in text


def test_5_uniform_guess_f1_matches_sklearn_on_random_guesses():
    from sklearn.metrics import f1_score

    from reports.stats import uniform_guess_f1

    rng = np.random.default_rng(0)
    y = rng.choice(4, 120, p=[0.6, 0.2, 0.15, 0.05])
    guesses = [
        f1_score(y, rng.integers(0, 4, len(y)), labels=range(4), average="macro", zero_division=0)
        for _ in range(1500)
    ]
    assert uniform_guess_f1(y, 4) == pytest.approx(np.mean(guesses), abs=0.004)
    assert abs(uniform_guess_f1(y, 4) - 0.25) > 0.02  # not 1/K
