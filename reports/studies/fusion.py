"""docs/<dataset>_fusion_hp_summary.md (seed 001): each fusion type at its best hyper-parameters
on dev, the test metrics per task with the best of each column in bold, F1 against latency.
Comparisons use the seeds every configuration FINISHED (see reports.groups.Group)."""

from __future__ import annotations

import numpy as np

from reports.groups import Group, comparable, configs, tasks
from reports.markdown import table
from reports.matched import bootstrap_line, f1_interval
from reports.mcnemar import chosen_pairs, mcnemar_section
from reports.plots import bars, pareto_plot, seeds_phrase
from reports.query import Sweep
from reports.ranks import across
from reports.registry import Context, Document, register
from reports.sections import seeds_note
from reports.stats import fmt, seeds_text
from reports.teacher import MARK, note, of, reach, teachers
from reports.teacher_seeds import variance_section, without_teacher_seed


def document(sweep: Sweep, ctx: Context) -> list[str]:
    """One row per fusion type at its best hyper-parameters on dev; best of each column bold."""
    ts, ds, img = tasks(sweep), sweep.dataset, ctx.img
    lines = [
        f"# {ds}: fusion comparison at the best hyper-parameters",
        "",
        f"Sweep run `{sweep.run_id}` ({sweep.start_time}). Each fusion type appears once, at the "
        "configuration with the best dev average macro-F1; the columns are test metrics.",
        "",
    ]
    cs = configs(sweep)
    if not cs:
        return lines + ["No FINISHED student run in this sweep.", ""]
    lines += seeds_note(cs)
    if not comparable(cs):
        return lines
    best: dict[str, Group] = {}
    for c in cs:  # ordered best dev first (matched seeds): the first of each fusion wins
        best.setdefault(c.tag("fusion"), c)
    metrics = [f"test/{t}/{m}" for m in ("acc", "f1", "auc") for t in ts]
    tops = {m: max(c.fair.mean(m) for c in best.values()) for m in metrics}
    order = list(best.values())
    taught = teachers(order)  # the teachers of the rows shown (the sweep varies them with the student)
    rows = [  # teachers first, never bold: the best of a column is the best student's
        [
            t.label,
            "teacher of " + ", ".join(f"`{c.label}`" for c in t.students),
            t.teacher.cell("best_dev/avg_f1", 3),
        ]
        + [t.teacher.cell(m, 3) for m in metrics]
        for t in taught
    ]
    rows += [
        [
            c.tag("fusion"),
            f"`{c.label}`",
            c.cell("best_dev/avg_f1", 3),
            *(
                f"**{c.cell(m, 3)}**" if np.isclose(c.fair.mean(m), tops[m]) else c.cell(m, 3)
                for m in metrics
            ),
        ]
        for c in order
    ]
    head = [
        "Fusion Type",
        "Best configuration (dev)",
        "dev avg_f1",
        *(m.replace("/", "_")[5:] for m in metrics),
    ]
    lines += table(head, rows, "ll" + "r" * (len(metrics) + 1))
    seeds = cs[0].matched
    lines += ["", f"Bold: the best student of each test column on {seeds_text(seeds)}.", ""]
    lines += note(taught, order) + ["Interpretation:", ""]
    for t in ts:
        top = max(order, key=lambda c: (c.fair.mean(f"test/{t}/f1"), c.tag("fusion")))
        lines.append(
            f"- `{top.tag('fusion')}` has the best test {t} F1 ({fmt(top.fair.mean(f'test/{t}/f1'), 3)})."
        )
    text, clear = bootstrap_line(order[0], order[1]) if len(order) >= 2 else ("", True)
    lines.append(
        f"- `{order[0].tag('fusion')}` is best on dev average F1 ({fmt(order[0].fair.mean('best_dev/avg_f1'), 3)}): "
        + (
            "the default to pick, since dev, not test, chooses."
            if clear
            else f"a default to pick, since dev chooses, but not shown better than `{order[1].tag('fusion')}` on test."
        )
    )
    if text:
        lines.append(f"- {text}")
    lines += reach(taught)
    lines += [""] + mcnemar_section(
        chosen_pairs(order, of(taught, order[0]), MARK), seeds, f"### McNemar tests ({ds})"
    )
    lines += variance_section(cs, taught, without_teacher_seed, f"### Teacher variance ({ds})")
    rel = bars(
        [c.tag("fusion") for c in order],
        [c.fair.mean("test/avg_f1") for c in order],
        f"{ds}: fusion comparison ({seeds_phrase(seeds)})",
        img / f"{ds}_fusion.png",
    )
    lines += ["", f"![fusion comparison]({rel})", ""]
    rel = pareto_plot(  # fusion modules differ in architecture: their latencies differ for real
        [c.tag("fusion") for c in order],
        [c.fair.mean("latency_ms") for c in order],
        [f1_interval(c) for c in order],
        f"{ds}: F1 against latency per fusion",
        img / f"{ds}_fusion_pareto.png",
    )
    return lines + [f"![F1 against latency]({rel})", ""]


@register("fusion", order=20)
def report(sweeps: list[Sweep], ctx: Context) -> list[Document]:
    """One document per fusion sweep (per dataset)."""
    docs = [Document(f"{s.dataset}_fusion_hp_summary.md", [s], document(s, ctx)) for s in sweeps]
    ranked = across(sweeps, lambda c: c.tag("fusion"), "fusion", ctx.img, "fusion")
    if ranked:  # two or more datasets: one document across them
        head = [
            "# Fusions across datasets",
            "",
            f"Fusion sweeps of {len(sweeps)} datasets: {', '.join(s.dataset for s in sweeps)}.",
            "",
        ]
        docs.append(Document("fusion_across_datasets.md", sweeps, head + ranked))
    return docs
