"""docs/loss_explore.md: the structure of seed note 000, with honest comparisons.

Every takeaway follows from the numbers of the sweep: the best choice only when the top two on
dev are apart on test beyond the bootstrap interval, the no-distillation baseline (`none`)
compared with each loss, and no fixed "safe" loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reports.groups import Group, comparable, configs, task_classes, task_field, tasks
from reports.markdown import table
from reports.matched import against, bootstrap_line, f1_interval, kd_help
from reports.mcnemar import chosen_pairs, mcnemar_section
from reports.plots import bars_caption, f1_bars, pareto_plot
from reports.query import Sweep, predictions
from reports.ranks import across
from reports.registry import Context, Document, register
from reports.sections import seeds_note
from reports.stats import Diff, fmt, seeds_text, uniform_guess_f1
from reports.teacher import MARK, Taught, no_better, note, of, reach, teachers
from reports.teacher_seeds import variance_section

MARGIN = 0.05  # F1 within this of chance counts as collapsed


def chance(sweep: Sweep, ts: list[str]) -> tuple[float, str]:
    """(level, what it is) of the test avg macro-F1 under guessing: the expected macro-F1 of
    uniform guessing given the test label counts, from a run's saved predictions (every run of a
    sweep is tested on the same samples); without predictions, the mean of 1/K, named as such."""
    pred = predictions(sweep.runs.iloc[0]) if not sweep.runs.empty else None
    if pred is not None and all(f"{t}/label" in pred for t in ts):
        levels = [
            uniform_guess_f1(pred[f"{t}/label"].to_numpy(), sum(c.startswith(f"{t}/p/") for c in pred))
            for t in ts
        ]
        return float(np.mean(levels)), "expected value under uniform guessing, given the test label counts"
    ks = [
        sum(
            1
            for c in sweep.runs.columns
            if c.startswith(f"metrics.test/{t}/precision/") and sweep.runs[c].notna().any()
        )
        for t in ts
    ]
    return float(np.mean([1.0 / max(k, 1) for k in ks])), "mean of 1/K over tasks (no saved test labels)"


def objectives(cs: list[Group]) -> list[str]:
    """Each loss's objective with its numbers, as its runs recorded it (tag `loss.formula`):
    two losses of one name can differ (kdsweep's `vanilla` and the group's). Runs older than the
    tag give no line."""
    found = {
        c.tag("loss"): c.tag("loss.formula") for c in cs if c.tag("loss.formula") not in ("?", "nan", "")
    }
    if not found:
        return []
    return ["Objectives, as each run recorded them:", "", *[f"- `{k}`: `{v}`" for k, v in found.items()], ""]


def one_architecture(cs: list[Group]) -> bool:
    """True when every student has the same architecture: latency differences are then noise."""
    arch = {(c.tag("vision"), c.tag("text"), c.tag("fusion"), c.param("student.fusion.layers")) for c in cs}
    return len(arch) == 1


def _fastest_line(cs: list[Group], fastest: Group) -> str:
    """The fastest configuration, unless they all share one architecture: then the spread is
    measurement noise (machine load, trials side by side), and the line says so."""
    lat = [c.fair.mean("latency_ms") for c in cs]
    if one_architecture(cs) and len(cs) > 1:
        return (
            f"- Latency: every student here has the same architecture, so the spread "
            f"({fmt(min(lat), 2)}-{fmt(max(lat), 2)} ms) is measurement noise, not an effect of the loss."
        )
    return f"- Fastest: `{fastest.tag('loss')}` ({fmt(fastest.fair.mean('latency_ms'), 2)} ms median)."


def _table(cs: list[Group], ts: list[str], ds: str, taught: list[Taught]) -> list[str]:
    head = ["Run", "Loss", *(f"Test {t} F1" for t in ts), "Test avg F1", "Dev avg F1", "Test infer (ms)"]
    cells = lambda c: [  # noqa: E731
        *(c.cell(f"test/{t}/f1") for t in ts),
        c.cell("test/avg_f1"),
        c.cell("best_dev/avg_f1"),
        c.latency(),
    ]
    rows = [[t.label, "labels only", *cells(t.teacher)] for t in taught]
    rows += [[f"`{c.name}`", c.tag("loss"), *cells(c)] for c in cs]
    return [
        f"### Test Performance Overview ({ds})",
        "",
        *table(head, rows, "ll" + "r" * (len(ts) + 3)),
        "",
        "Student rows are ordered by dev average macro-F1 (the selection metric); test numbers are "
        "reported, never used to choose. Latency: median (p90) of 50 timed batch-1 passes.",
        "",
        *note(taught, cs),
    ]


def _takeaway(
    ds: str,
    cs: list[Group],
    clear: bool,
    base: Group | None,
    beats: list[Group],
    bad: list[str],
    close: list[str],
) -> list[str]:
    """`bad`: losses collapsed or below `none` beyond noise; `close`: below it within noise."""
    best = cs[0]
    choice = (
        f"`{best.tag('loss')}` (best on dev, and apart from the runner-up on test)"
        if clear
        else f"no clear winner between `{cs[0].tag('loss')}` and `{cs[1].tag('loss')}`"
        if len(cs) >= 2
        else f"`{best.tag('loss')}` (the only configuration)"
    )
    if base is None:
        kd = "not measured (no `none` run)."
    elif beats:
        kd = "distillation helps: " + ", ".join(f"`{b.tag('loss')}`" for b in beats) + " beat `none`."
    else:
        kd = "no loss is shown to beat training without distillation (`none`)."
    # "nothing fell below `none`" read as false beside rows below it within noise: say which rule
    avoid = ", ".join(f"`{b}`" for b in bad)
    if not bad and base is None:
        avoid = "no loss collapsed (no `none` run to compare with)"
    elif not bad:
        avoid = "no loss collapsed, and none is below `none` by more than noise"
        if close:
            avoid += f" ({', '.join(f'`{b}`' for b in close)} below it within noise)"
    return [
        f"**{ds} takeaway:**",
        "",
        f"- **Best choice:** {choice}.",
        f"- **KD vs no KD:** {kd}",
        f"- **Not recommended:** {avoid}.",
        "",
    ]


def section(sweep: Sweep, img: Path) -> tuple[list[str], str | None]:
    """One dataset's section, and its clear best loss (None when the top two are within noise)."""
    ts, cs = tasks(sweep), configs(sweep)
    ds = sweep.dataset
    lines = [f"## {ds}: Effect of Loss Type", "", f"Sweep run `{sweep.run_id}` ({sweep.start_time}).", ""]
    lines += ["Task mapping:", ""]
    for i, t in enumerate(ts, 1):
        names = task_classes(sweep, t)
        classes = f"; {len(names)} classes: {', '.join(names)}" if names else ""
        lines.append(f"- Task {i}: `{t}` (label field `{task_field(sweep, t)}`{classes})")
    lines.append("")
    if not cs:
        return lines + ["No FINISHED student run in this sweep.", ""], None
    taught = teachers(cs)
    lines += _table(cs, ts, ds, taught) + seeds_note(cs) + objectives(cs)
    level, level_what = chance(sweep, ts)
    collapsed = [c for c in cs if c.mean("test/avg_f1") <= level + MARGIN]
    lines += [f"### {ds} Observations", ""]
    if not comparable(cs):
        return lines + ["- No seed is shared by every configuration: nothing is compared.", ""], None
    seeds = cs[0].matched
    base = next((c for c in cs if c.tag("loss") == "none"), None)
    others = [c for c in cs if c is not base]
    # the differences the "Does KD help?" table shows, judged as its one family (computed once)
    judged = against(others, base, seeds, of(taught, base)) if base is not None else (None, [])
    vs_none: dict[str, Diff | None] = (
        dict(zip([c.label for c in others], judged[1], strict=True)) if base is not None else {}
    )
    below = [c for c in cs if (d := vs_none.get(c.label)) is not None and d.sign < 0]
    best, fastest = cs[0], min(cs, key=lambda c: (c.fair.mean("latency_ms"), c.label))
    lines += [
        f"- Best on dev: `{best.tag('loss')}` (dev avg F1 {fmt(best.fair.mean('best_dev/avg_f1'))}, "
        f"test avg F1 {fmt(best.fair.mean('test/avg_f1'))}; {seeds_text(seeds)}).",
        _fastest_line(cs, fastest),
        f"- Chance level of the average macro-F1 ({level_what}): {fmt(level)}.",
    ]
    for c in collapsed:
        lines.append(
            f"- Collapsed: `{c.tag('loss')}` (test avg F1 {c.cell('test/avg_f1')}, within {MARGIN} of chance)."
        )
    for c in below:
        d = vs_none[c.label]
        lines.append(
            f"- Below the no-KD baseline: `{c.tag('loss')}` (test avg F1 difference {d.diff:+.4f} against `none`, "
            f"interval {d.interval()}, p {d.p_cell()}{' Holm-adjusted' if d.family > 1 else ''})."
        )
    clear = False
    if len(cs) >= 2:
        text, clear = bootstrap_line(cs[0], cs[1])
        lines.append(f"- {text}")
    lines += reach(taught)
    lines += ["", f"### Does KD help? ({ds})", ""]
    beats: list[Group] = []
    if base is None:
        lines += ["No `none` (no-KD) run in this sweep: whether distillation helps is not measured.", ""]
    else:
        loss = lambda c: f"`{c.tag('loss')}`"  # noqa: E731
        teacher = of(taught, base)
        part, beats = kd_help(
            [c for c in cs if c is not base],
            base,
            seeds,
            lambda c: [loss(c)],
            ["Loss"],
            "loss",
            loss,
            (f"teacher {MARK}", teacher) if teacher is not None else None,
            judged,
        )
        said = no_better(teacher, base, seeds)
        lines += part + (said + [""] if said else [])
    loss_of = lambda c: f"`{c.tag('loss')}`"  # noqa: E731
    lines += mcnemar_section(
        chosen_pairs(cs, of(taught, cs[0]), MARK, loss_of), seeds, f"### McNemar tests ({ds})"
    )
    lines += variance_section(cs, taught, lambda c: c.tag("loss"), f"### Teacher variance ({ds})")
    bad = sorted({c.tag("loss") for c in collapsed + below})
    close = sorted(
        c.tag("loss") for c in cs if (d := vs_none.get(c.label)) is not None and d.diff < 0 and d.sign == 0
    )
    lines += _takeaway(ds, cs, clear, base, beats, bad, close)
    fair = [c.fair for c in cs]
    rel = f1_bars(
        [c.tag("loss") for c in cs],
        [c.values("test/avg_f1") for c in fair],
        seeds,
        level,
        f"{ds}: F1 per loss",
        img / f"{ds}_loss_f1.png",
        [t.teacher.fair.mean("test/avg_f1") for t in taught],
    )
    lines += [f"![F1 per loss]({rel})", "", f"Test avg F1 per loss ({bars_caption(seeds)}).", ""]
    if not one_architecture(cs):  # a front over one architecture's latencies would rank noise
        rel2 = pareto_plot(
            [c.tag("loss") for c in cs],
            [c.mean("latency_ms") for c in fair],
            [f1_interval(c) for c in cs],
            f"{ds}: F1 against latency",
            img / f"{ds}_loss_pareto.png",
        )
        lines += [f"![F1 against latency]({rel2})", ""]
    return lines, (best.tag("loss") if clear else None)


@register("loss", order=10)
def report(sweeps: list[Sweep], ctx: Context) -> list[Document]:
    """One document for every loss sweep: a section per dataset, then cross-dataset advice."""
    lines = [
        "# Loss Exploration",
        "",
        "Distillation losses compared per dataset (studies of kind `loss`).",
        "",
    ]
    best: dict[str, str | None] = {}
    for s in sweeps:
        part, best[s.dataset] = section(s, ctx.img)
        lines += part + ["---", ""]
    lines += ["## Cross-Dataset Loss Recommendations", ""]
    winners = {b for b in best.values()}
    if len(best) < 2:
        lines.append("- Only one dataset has a loss sweep: no cross-dataset advice yet.")
    elif None not in winners and len(winners) == 1:
        lines.append(f"- `{winners.pop()}` is the clear best choice on every dataset.")
    else:
        for ds, b in sorted(best.items()):
            lines.append(f"- {ds}: " + (f"prefer `{b}`." if b else "no clear winner; tune per dataset."))
    ranked = across(sweeps, lambda c: c.tag("loss"), "loss", ctx.img, "loss", "losses")
    lines += [""] + ranked if ranked else []
    return [Document("loss_explore.md", sweeps, lines + [""])]
