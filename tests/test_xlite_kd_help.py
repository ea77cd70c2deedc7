"""The X-Lite "does KD help?" section on synthetic rows and differences, without MLflow or Ray:
the answer comes from KD against its alpha = 0 control, the baseline comparison is titled by the
changes it makes at once, and an older sweep without the control says so."""

from __future__ import annotations

import pandas as pd

from reports.groups import Group
from reports.stats import Diff
from reports.studies.xlite.kd_help import Comparison, changes, kd_help_section


def _row(exp_id: str, phase: str, attention: str, loss: str, alpha: float, test: float) -> Group:
    runs = pd.DataFrame(
        {
            "run_id": [f"r-{exp_id}"],
            "params.seed": ["0"],
            "params.student.vision.name": ["efficientnet_b0"],
            "params.student.vision.attention": [attention],
            "params.loss.name": [loss],
            "params.loss.temperature": ["4.0"],
            "params.loss.alpha": [str(alpha)],
            "metrics.best_dev/findings/auc": [0.8],
            "metrics.test/findings/auc": [test],
        }
    )
    return Group(exp_id, runs, phase=phase, exp_id=exp_id, tasks=["findings"])


KD = _row("KD_002", "distillation", "mhsa", "xlite_kd", 0.5, 0.78)
CONTROL = _row("CONTROL_001", "kd_control", "mhsa", "xlite_kd", 0.0, 0.77)
BASE = _row("BASELINE_001", "baseline", "none", "none", 0.7, 0.70)
WITHIN = Diff(0.01, -0.02, 0.04, seeds=(0, 1), samples=60)
ABOVE = Diff(0.08, 0.03, 0.13, seeds=(0, 1), samples=60)


def test_the_answer_is_kd_against_its_control_and_the_baseline_is_labelled():
    text = "\n".join(kd_help_section(Comparison(KD, BASE, ABOVE, ""), Comparison(KD, CONTROL, WITHIN, "")))
    assert (
        "| Control: α = 0 (no teacher term) | `CONTROL_001` (efficientnet_b0, attention mhsa, τ=4, α=0) |"
        in text
    )
    assert "(KD − control) over the 60 test images" in text and "(seeds 0, 1)" in text
    assert "+0.0100, 95 % interval [-0.0200, +0.0400]: within noise (the interval contains 0)" in text
    assert (
        "**Conclusion**: the difference is within noise: this test set does not show that distillation helps."
        in text
    )
    assert "#### KD + focal + attention vs the baseline: three changes at once" in text
    assert "the attention (none → mhsa)" in text and "(that is the control above)" in text
    assert "**Verdict**: the combination scores higher beyond noise" in text
    assert text.count("**Conclusion**") == 1  # only the control comparison concludes on KD


def test_a_control_beyond_noise_concludes_that_distillation_helps():
    lines = kd_help_section(Comparison(KD, BASE, ABOVE, ""), Comparison(KD, CONTROL, ABOVE, ""))
    assert "**Conclusion**: distillation helps beyond the noise of this test set." in lines


def test_an_old_sweep_without_the_control_says_so_and_keeps_the_baseline_comparison():
    text = "\n".join(kd_help_section(Comparison(KD, BASE, ABOVE, ""), None))
    assert "No `kd_control` phase in this sweep (it predates the control)" in text
    assert "(KD − baseline) over the 60 test images" in text and "**Conclusion**" not in text


def test_a_control_that_did_not_finish_or_has_no_predictions():
    failed = kd_help_section(
        Comparison(KD, BASE, ABOVE, ""), Comparison(KD, None, None, "the control did not finish")
    )
    assert "Not answered: the control did not finish." in failed
    missing = kd_help_section(
        Comparison(KD, BASE, None, "x"), Comparison(KD, CONTROL, None, "test predictions are missing")
    )
    assert "No bootstrap interval: test predictions are missing." in missing


def test_the_title_counts_what_differs():
    assert changes(KD, BASE) == ["KD", "focal", "attention"]
    assert changes(KD, _row("B", "baseline", "mhsa", "none", 0.7, 0.7)) == ["KD", "focal"]
