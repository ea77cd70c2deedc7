"""docs/backbones.md: student backbones by test F1 and AUC, parameters, size, latency, and the
share of its teacher's test F1 each student keeps; F1 against latency. A sweep that also varies
the loss (sweeps/students.yaml: each student with KD and without) gets a Loss column."""

from __future__ import annotations

import numpy as np

from reports.compression import compression_section
from reports.groups import Group, comparable, configs, tasks
from reports.markdown import table
from reports.matched import BETTER, bootstrap_line, f1_interval, paired_f1
from reports.mcnemar import Pair, chosen_pairs, mcnemar_section
from reports.names import backbone
from reports.plots import pareto_plot, seeds_phrase
from reports.query import Sweep
from reports.registry import Context, Document, register
from reports.resample import RESAMPLES
from reports.sections import seeds_note
from reports.stats import fmt, holm_adjusted, mean_std, seeds_text
from reports.teacher import MARK, Taught, no_better, note, of, reach, teachers
from reports.teacher_seeds import variance_section

HEAD = [
    "Vision",
    "Text",
    "Test avg F1",
    "Dev avg F1",
    "Test AUC (mean over tasks)",
    "Params (M)",
    "Size (MB)",
    "Latency (ms)",
    "Retention",
]


def _cells(g: Group, ts: list[str], retention: str) -> list[str]:
    """From Test avg F1 on: a student's or (retention n/a) a teacher's figures."""
    # a run without an AUC (a teacher logged before AUCs) reads n/a, not an error
    auc = [float(np.mean([r.get(f"metrics.test/{t}/auc", np.nan) for t in ts])) for _, r in g.runs.iterrows()]
    return [
        g.cell("test/avg_f1"),
        g.cell("best_dev/avg_f1"),
        f"{mean_std(auc)}{g.short()}",
        fmt(g.mean("params") / 1e6, 2),
        fmt(g.mean("size_mb"), 2),
        g.latency(),
        retention,
    ]


def _teacher_row(t: Taught, ts: list[str], by_loss: bool) -> list[str]:
    run = t.teacher.runs.iloc[0]
    names = [f"teacher {MARK}: {backbone(run, 'teacher', 'vision')}", backbone(run, "teacher", "text")]
    return [*names, *(["labels only"] if by_loss else []), *_cells(t.teacher, ts, "n/a")]


def kd_pairs(cs: list[Group]) -> list[tuple[Group, Group]]:
    """(KD student, no-KD student of the same vision and text backbones) for every KD
    configuration that has such a twin, in the table's order."""
    none = {(c.tag("vision"), c.tag("text")): c for c in cs if c.tag("loss") == "none"}
    return [
        (c, none[c.tag("vision"), c.tag("text")])
        for c in cs
        if c.tag("loss") != "none" and (c.tag("vision"), c.tag("text")) in none
    ]


def kd_per_architecture(pairs: list[tuple[Group, Group]], seeds: tuple[int, ...], ds: str) -> list[str]:
    """Does KD help each architecture? The KD student against the no-KD student of the same
    backbones and seeds: test avg F1 difference, paired bootstrap interval, p Holm-adjusted over
    the table, and a plain sentence naming where it helps."""
    judged = holm_adjusted([paired_f1(kd, none, seeds) for kd, none in pairs])
    rows, helps, hurts, unknown = [], [], [], []
    for (kd, _), d in zip(pairs, judged, strict=True):
        arch = f"{kd.tag('vision')}/{kd.tag('text')}"
        keys = [kd.tag("vision"), kd.tag("text"), f"`{kd.tag('loss')}`"]
        if d is None:
            unknown.append(arch)
            rows.append([*keys, "n/a", "no predictions", "n/a", "not tested"])
            continue
        rows.append([*keys, f"{d.diff:+.4f}", d.interval(), d.p_cell(), d.verdict(BETTER)])
        (helps if d.sign > 0 else hurts if d.sign < 0 else []).append(arch)
    family = next((d.family for d in judged if d is not None), 1)
    lines = [
        f"### Does KD help each architecture? ({ds})",
        "",
        "Each KD student against the student of the same backbones trained without distillation "
        f"(`none`), over {seeds_text(seeds)}, paired by seed and test sample: test avg F1 difference "
        f"(KD − none), 95 % interval and two-sided p from {RESAMPLES} bootstrap resamples"
        + (f"; the {family} p-values Holm-adjusted, verdicts read from them." if family > 1 else "."),
        "",
        *table(
            [
                "Vision",
                "Text",
                "KD loss",
                "Δ test avg F1 (KD − none)",
                "95 % interval",
                "p (Holm)" if family > 1 else "p",
                "Verdict",
            ],
            rows,
            "lll" + "rrr",
        ),
        "",
    ]
    lines.append(
        f"KD helps beyond noise for: {', '.join(helps)}."
        if helps
        else "KD is not shown to help any architecture."
    )
    if hurts:
        lines.append(f"KD hurts beyond noise for: {', '.join(hurts)}.")
    rest = [f"{kd.tag('vision')}/{kd.tag('text')}" for kd, _ in pairs]
    rest = [a for a in rest if a not in helps + hurts + unknown]
    if rest:
        lines.append(f"Within noise: {', '.join(rest)}.")
    return lines + [""]


@register("backbone", order=40)
def report(sweeps: list[Sweep], ctx: Context) -> list[Document]:
    """One document for every backbone sweep: a section per dataset."""
    lines = ["# Student backbones", ""]
    for sweep in sweeps:
        ds, cs, ts = sweep.dataset, configs(sweep), tasks(sweep)
        lines += [f"## {ds}", "", f"Sweep run `{sweep.run_id}` ({sweep.start_time}).", ""]
        if not cs:
            lines += ["No FINISHED student run in this sweep.", ""]
            continue
        by_loss = len({c.tag("loss") for c in cs}) > 1  # KD and no-KD of each student
        taught = teachers(cs)
        t_f1: dict[str, float] = {}  # each FINISHED teacher run's test F1, for its students' retention
        for t in taught:  # values() is empty where the runs lack the metric: no retention then
            t_f1.update(zip(t.teacher.runs["run_id"], t.teacher.values("test/avg_f1"), strict=False))
        rows = [_teacher_row(t, ts, by_loss) for t in taught]
        for c in cs:
            ret = [
                r["metrics.test/avg_f1"] / t_f1[r["tags.teacher_run_id"]]
                for _, r in c.runs.iterrows()
                if r["tags.teacher_run_id"] in t_f1
            ]
            run = c.runs.iloc[0]
            rows.append(
                [
                    backbone(run, "student", "vision"),
                    backbone(run, "student", "text"),
                    *([c.tag("loss")] if by_loss else []),
                    *_cells(c, ts, f"{mean_std(ret, 3)}{c.short()}"),
                ]
            )
        head = [*HEAD[:2], "Loss", *HEAD[2:]] if by_loss else HEAD
        lines += table(head, rows, "lll" + "r" * 7 if by_loss else "ll" + "r" * 7)
        lines += [
            "",
            "Student rows are ordered by dev average macro-F1. Retention = student test avg F1 / its "
            "teacher's test avg F1.",
            "",
        ]
        lines += note(taught, cs) + seeds_note(cs)
        if not comparable(cs):
            continue
        if len(cs) >= 2:
            lines += [bootstrap_line(cs[0], cs[1])[0], ""]
        said = reach(taught) + [  # each student trained without distillation against its teacher
            line
            for c in cs
            if by_loss and c.tag("loss") == "none"
            for line in no_better(of(taught, c), c, c.matched, f"{c.tag('vision')}/{c.tag('text')} none")
        ]
        lines += said + ([""] if said else [])
        pairs = kd_pairs(cs) if by_loss else []
        if pairs:
            lines += kd_per_architecture(pairs, cs[0].matched, ds)
        name = lambda c: f"{c.tag('vision')}/{c.tag('text')}" + (f" {c.tag('loss')}" if by_loss else "")  # noqa: E731, B023
        tests = chosen_pairs(cs, of(taught, cs[0]), MARK, name)
        tests += [Pair(name(kd), name(none), kd, none) for kd, none in pairs]
        lines += mcnemar_section(tests, cs[0].matched, f"### McNemar tests ({ds})")
        lines += variance_section(cs, taught, name, f"### Teacher variance ({ds})")
        only = taught[0].teacher if len(taught) == 1 else None  # a ratio needs one reference
        lines += compression_section(only, [(name(c), c) for c in cs], f"### Compression ({ds})")
        rel = pareto_plot(  # backbones differ in architecture: their latencies differ for real
            [f"{c.tag('vision')}/{c.tag('text')}" + (f" {c.tag('loss')}" if by_loss else "") for c in cs],
            [c.fair.mean("latency_ms") for c in cs],
            [f1_interval(c) for c in cs],
            f"{ds}: F1 against latency ({seeds_phrase(cs[0].matched)})",
            ctx.img / f"{ds}_backbone_pareto.png",
        )
        lines += [f"![F1 against latency]({rel})", ""]
    return [Document("backbones.md", sweeps, lines)]
