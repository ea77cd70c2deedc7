"""Comparisons of the flat studies' configurations (loss, fusion, KD, backbone) on matched seeds:
paired bootstrap differences of test avg F1, per-configuration intervals, and the table against
the student trained without distillation (`none`) that the loss and KD documents share.
(The phased studies compare on validation AUC: see their modules under reports/studies/.)"""

from __future__ import annotations

from collections.abc import Callable

from reports.groups import Group
from reports.markdown import table
from reports.query import predictions
from reports.resample import RESAMPLES, f1_scorer, interval, paired, tasks_of
from reports.stats import Diff, Verdicts, holm_adjusted, seeds_text

BETTER = Verdicts("better", "worse", "within noise (interval contains 0)")


def paired_f1(a: Group, b: Group, seeds: tuple[int, ...]) -> Diff | None:
    """Test avg F1 of a - b over `seeds` (runs of both on the same seed paired); None without
    a run of every seed on both sides (a teacher need not have one), without predictions, or
    when the runs were tested on different samples."""
    if not seeds:
        return None
    try:
        pa = [predictions(a.run_of(s)) for s in seeds]
        pb = [predictions(b.run_of(s)) for s in seeds]
    except (IndexError, KeyError):  # no run of a seed, or runs without params.seed
        return None
    if any(p is None for p in pa + pb):
        return None
    try:
        return paired(pa, pb, f1_scorer(tasks_of(pa[0])), tuple(seeds))
    except ValueError:  # tested on different samples: no paired comparison
        return None


def bootstrap_line(a: Group, b: Group) -> tuple[str, bool]:
    """(sentence, clear) for the top two configurations on dev, from seed-paired test predictions
    on the seeds every configuration FINISHED."""
    d = paired_f1(a, b, a.matched)
    if d is None:
        return "test predictions are missing: no bootstrap interval.", False
    verdict = (
        f"`{a.label if d.diff > 0 else b.label}` is better on test"
        if d.clear
        else "no clear winner: the interval contains 0"
    )
    text = (
        f"Top two on dev, `{a.label}` vs `{b.label}`: test avg F1 difference {d.diff:+.4f}, paired bootstrap "
        f"95 % interval {d.interval()} ({seeds_text(d.seeds)}, 1000 resamples): {verdict}."
    )
    return text, d.clear


def f1_interval(c: Group) -> tuple[float, float, float]:
    """(test avg F1, low, high) over the matched seeds; a point without saved predictions."""
    fair = c.fair
    preds = [predictions(r) for _, r in fair.runs.iterrows()]
    if preds and all(p is not None for p in preds):
        try:
            return interval(preds, f1_scorer(tasks_of(preds[0])))
        except ValueError:
            pass
    m = fair.mean("test/avg_f1")
    return m, m, m


def against(
    cs: list[Group], base: Group, seeds: tuple[int, ...], teacher: Group | None = None
) -> tuple[Diff | None, list[Diff | None]]:
    """(teacher - base, [c - base for c in cs]): test avg F1 differences over `seeds` judged as
    one family (`holm_adjusted`), the teacher's too when given: what a "Does KD help?" table
    shows, and every sentence about the same comparisons reads."""
    first = [paired_f1(teacher, base, seeds)] if teacher is not None else [None]
    judged = holm_adjusted(first + [paired_f1(c, base, seeds) for c in cs])
    return judged[0], judged[1:]


def kd_help(
    cs: list[Group],
    base: Group,
    seeds: tuple[int, ...],
    keys: Callable[[Group], list[str]],
    key_header: list[str],
    what: str,
    name: Callable[[Group], str],
    teacher: tuple[str, Group] | None = None,
    judged: tuple[Diff | None, list[Diff | None]] | None = None,
) -> tuple[list[str], list[Group]]:
    """(lines, configurations shown to beat `base`): a table of each configuration against the baseline
    without distillation over `seeds`, and a plain sentence on whether any beats it. `teacher`:
    (its marked label, the teacher) for a first row read against the same baseline, counted in
    no verdict of the configurations. `judged`: `against(cs, base, seeds, teacher)` when the
    caller computed it already (each difference is a bootstrap of the test set)."""
    rows, better, worse, missing = [], [], [], []
    pad = [""] * (len(key_header) - 1)
    td, diffs = judged or against(cs, base, seeds, teacher[1] if teacher is not None else None)
    if teacher is not None and td is not None:  # without an interval it would only repeat the table
        rows.append([teacher[0], *pad, f"{td.diff:+.4f}", td.interval(), td.p_cell(), td.verdict(BETTER)])
    for c, d in zip(cs, diffs, strict=True):
        if d is None:
            missing.append(c)
            delta = c.on(seeds).mean("test/avg_f1") - base.on(seeds).mean("test/avg_f1")
            rows.append([*keys(c), f"{delta:+.4f}", "no predictions", "n/a", "not tested"])
            continue
        rows.append([*keys(c), f"{d.diff:+.4f}", d.interval(), d.p_cell(), d.verdict(BETTER)])
        if d.sign > 0:
            better.append(c)
        elif d.sign < 0:
            worse.append(c)
    family = next((d.family for d in [td, *diffs] if d is not None), 1)
    lines = [
        f"Test avg F1 difference against `none` (the student trained without distillation) over "
        f"{seeds_text(seeds)}, paired by seed and test sample; 95 % interval and two-sided p from "
        f"{RESAMPLES} bootstrap resamples of the test set. "
        + (
            f"The {family} p-values are Holm-adjusted as one family and the verdicts read from them "
            "(adjusted p < 0.05); the intervals are unadjusted."
            if family > 1
            else "Verdict: the interval above 0, below 0, or containing it."
        ),
        "",
        *table(
            [
                *key_header,
                "Δ test avg F1 vs `none`",
                "95 % interval",
                "p" + (" (Holm)" if family > 1 else ""),
                "Verdict",
            ],
            rows,
            "l" * len(key_header) + "rrr",
        ),
        "",
    ]
    if better:
        lines.append(f"Shown to beat training without distillation: {', '.join(name(b) for b in better)}.")
    else:
        why = (
            "no difference lies above 0 beyond noise after the Holm adjustment"
            if family > 1
            else "no interval lies above 0"
            if missing
            else "every interval contains 0"
            if not worse
            else "every interval contains 0 or lies below it"
        )
        lines.append(f"**No {what} is shown to beat training without distillation** (`none`): {why}.")
    return lines + [""], better
