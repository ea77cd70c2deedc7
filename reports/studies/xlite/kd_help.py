"""The "does KD help?" section of docs/xlite_experiments.md: the distilled student against its
control and against the baseline, each a paired bootstrap of test macro AUC (reports.resample).

The control (phase `kd_control`) is the KD configuration chosen on validation in `distillation`
with the teacher's weight at zero: same student, attention, label and focal terms; only the
teacher term differs, so KD − control is the effect of the teacher. The baseline (no KD, no
attention, weighted BCE alone) differs from the distilled student in the teacher term, the focal
term and the attention at once; that comparison is kept, labelled as such. An older store without
the control says so and keeps the baseline comparison."""

from __future__ import annotations

from typing import NamedTuple

from reports.groups import Group
from reports.markdown import table
from reports.phased import KD_PHASES, Study
from reports.query import predictions
from reports.resample import RESAMPLES, auc_scorer, paired
from reports.stats import Diff, Verdicts, fmt, seeds_text

CONTROL_PHASE = "kd_control"

BEYOND = Verdicts(
    "beyond noise (the interval lies above 0)",
    "beyond noise, lower (the interval lies below 0)",
    "within noise (the interval contains 0)",
)
CONCLUSION = Verdicts(
    "distillation helps beyond the noise of this test set.",
    "distillation hurts beyond the noise of this test set.",
    "the difference is within noise: this test set does not show that distillation helps.",
)
# the baseline comparison changes several things at once: its verdict never credits KD alone
COMBINED = Verdicts(
    "the combination scores higher beyond noise; which of its changes helps is not separated here.",
    "the combination scores lower beyond noise; which of its changes hurts is not separated here.",
    "the difference is within noise: this test set does not show that the combination helps.",
)
COUNT = {1: "one change", 2: "two changes", 3: "three changes", 4: "four changes", 5: "five changes"}


class Comparison(NamedTuple):
    """Configuration `a` against `b` (either None when the study has none), their paired test
    macro-AUC difference a − b, or why there is none."""

    a: Group | None
    b: Group | None
    diff: Diff | None
    why: str


def paired_auc(study: Study, a: Group, b: Group) -> tuple[Diff | None, str]:
    """Test macro AUC of a − b, runs of the same seed paired, on the seeds both FINISHED."""
    seeds = tuple(s for s in a.seeds if s in b.seeds)
    if not seeds:
        return None, "the two share no seed"
    pa = [predictions(a.runs.iloc[a.seeds.index(s)]) for s in seeds]
    pb = [predictions(b.runs.iloc[b.seeds.index(s)]) for s in seeds]
    if any(p is None for p in pa + pb):
        return None, "test predictions are missing"
    try:
        return paired(pa, pb, auc_scorer(study.tasks), seeds, unit="images"), ""
    except ValueError as e:
        return None, str(e)


def kd_diff(study: Study) -> Comparison:
    """The best distilled student (a) against the best baseline (b), both chosen on validation."""
    base, kd = study.best(["baseline"]), study.best(KD_PHASES)
    if base is None or kd is None:
        return Comparison(kd, base, None, "no FINISHED baseline or distilled run")
    return Comparison(kd, base, *paired_auc(study, kd, base))


def control_diff(study: Study) -> Comparison | None:
    """The KD configuration the control was made from (a) against the control (b); None when the
    sweep has no `kd_control` phase (a store from before it existed)."""
    rows = study.phase(CONTROL_PHASE)
    if not rows:
        return None
    got = study.chosen(CONTROL_PHASE)  # phases.json: the configuration the control copies
    kd = got[1] if got else None
    ctrl = next((r for r in rows if r.ok), None)
    if kd is None or ctrl is None:
        why = (
            "the control's KD configuration is not in phases.json"
            if kd is None
            else "the control did not finish"
        )
        if ctrl is None and rows[0].missing():
            why += f" ({rows[0].missing()[0][1]})"
        return Comparison(kd, ctrl, None, why)
    return Comparison(kd, ctrl, *paired_auc(study, kd, ctrl))


def changes(kd: Group, base: Group) -> list[str]:
    """What differs between the distilled student and the baseline, as the section's title names it."""
    out = ["KD"]
    if kd.param("loss.name") == "xlite_kd":  # its focal term is added on top of the label term
        out.append("focal")
    if kd.attention != base.attention:
        out.append("attention")
    if kd.backbone != base.backbone:
        out.append("backbone")
    return out


def spelled(kd: Group, base: Group) -> str:
    """`changes` in words, for the sentence under the title."""
    words = {
        "KD": "the teacher term (KD)",
        "focal": "the focal term",
        "attention": f"the attention ({base.attention or '?'} → {kd.attention or '?'})",
        "backbone": f"the backbone ({base.backbone or '?'} → {kd.backbone or '?'})",
    }
    got = [words[c] for c in changes(kd, base)]
    return got[0] if len(got) == 1 else f"{', '.join(got[:-1])} and {got[-1]}"


def _bootstrap(d: Diff, what: str) -> str:
    return (
        f"Paired bootstrap of the test macro-AUC difference ({what}) over the {d.samples} test images, "
        f"matched by image index and seed ({seeds_text(d.seeds)}), {RESAMPLES} resamples with a fixed "
        f"resampling seed: {d.diff:+.4f}, 95 % interval {d.interval()}: {d.verdict(BEYOND)}."
    )


def _pair_table(first: list[str], second: list[str], a: Group, b: Group) -> list[str]:
    rows = [
        [*first, b.describe(), fmt(b.val), fmt(b.test), "-"],
        [*second, a.describe(), fmt(a.val), fmt(a.test), f"{a.test - b.test:+.4f}"],
    ]
    return table(["Configuration", "Exp", "Val AUC", "Test AUC", "Delta (test)"], rows, "llrrr") + [""]


def control_lines(c: Comparison | None) -> list[str]:
    """KD against its α = 0 control: the section's answer."""
    lines = [f"#### KD against its control (teacher weight α = 0, phase `{CONTROL_PHASE}`)", ""]
    if c is None:
        return lines + [
            f"No `{CONTROL_PHASE}` phase in this sweep (it predates the control): the teacher's own effect "
            "is not measured here, and the comparison below changes several things at once.",
            "",
        ]
    kd, ctrl, d, why = c
    if kd is None or ctrl is None:
        return lines + [f"Not answered: {why}.", ""]
    lines += [
        "The KD configuration chosen on validation in `distillation` against the same configuration with "
        "the teacher's weight at zero: same student, attention, label and focal terms; only the teacher term "
        "differs. Runs of the same seed are paired.",
        "",
    ]
    lines += _pair_table(["Control: α = 0 (no teacher term)"], ["With KD (chosen on validation)"], kd, ctrl)
    if d is None:
        return lines + [f"No bootstrap interval: {why}.", ""]
    return lines + [_bootstrap(d, "KD − control"), "", f"**Conclusion**: {d.verdict(CONCLUSION)}", ""]


def baseline_lines(c: Comparison, controlled: bool) -> list[str]:
    """The best distilled student against the best baseline, titled by what differs between them."""
    kd, base, d, why = c
    if kd is None or base is None:
        return ["#### Against the baseline", "", f"Not answered: {why}.", ""]
    what = changes(kd, base)
    lines = [
        f"#### {' + '.join(what)} vs the baseline: {COUNT.get(len(what), f'{len(what)} changes')} at once",
        "",
        "The best distilled student against the best student without distillation, each chosen on "
        f"validation; they differ in {spelled(kd, base)}, so this difference is not the effect of KD alone"
        + (" (that is the control above)." if controlled else "."),
        "",
    ]
    lines += _pair_table(
        ["Baseline (no KD), best on validation"], ["With KD (best τ, α on validation)"], kd, base
    )
    if d is None:
        return lines + [f"No bootstrap interval: {why}.", ""]
    return lines + [_bootstrap(d, "KD − baseline"), "", f"**Verdict**: {d.verdict(COMBINED)}", ""]


def kd_help_section(three: Comparison, control: Comparison | None) -> list[str]:
    """Does KD help: against the control when the sweep has one, and against the baseline."""
    lines = ["### Ablation: does KD help?", ""]
    return lines + control_lines(control) + baseline_lines(three, control is not None)
