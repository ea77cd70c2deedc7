"""docs/backbones.md: student backbones by test F1 and AUC, parameters, size, latency, and the
share of its teacher's test F1 each student keeps; F1 against latency. A sweep that also varies
the loss (sweeps/students.yaml: each student with KD and without) gets a Loss column."""

from __future__ import annotations

import numpy as np

from reports.groups import comparable, configs, tasks
from reports.markdown import table
from reports.matched import bootstrap_line, f1_interval
from reports.plots import pareto_plot, seeds_phrase
from reports.query import Sweep, runs_by_id
from reports.registry import Context, Document, register
from reports.sections import seeds_note
from reports.stats import fmt, mean_std

HEAD = [
    "Vision",
    "Text",
    "Test avg F1",
    "Test AUC (mean over tasks)",
    "Params (M)",
    "Size (MB)",
    "Latency (ms)",
    "Retention",
]


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
        teachers = runs_by_id([t for c in cs for t in c.runs["tags.teacher_run_id"]])
        t_f1 = (
            dict(zip(teachers["run_id"], teachers["metrics.test/avg_f1"], strict=True))
            if not teachers.empty
            else {}
        )
        by_loss = len({c.tag("loss") for c in cs}) > 1  # KD and no-KD of each student
        rows = []
        for c in cs:
            auc = [float(np.mean([r[f"metrics.test/{t}/auc"] for t in ts])) for _, r in c.runs.iterrows()]
            ret = [
                r["metrics.test/avg_f1"] / t_f1[r["tags.teacher_run_id"]]
                for _, r in c.runs.iterrows()
                if r["tags.teacher_run_id"] in t_f1
            ]
            rows.append(
                [
                    c.tag("vision"),
                    c.tag("text"),
                    *([c.tag("loss")] if by_loss else []),
                    c.cell("test/avg_f1"),
                    f"{mean_std(auc)}{c.short()}",
                    fmt(c.mean("params") / 1e6, 2),
                    fmt(c.mean("size_mb"), 2),
                    c.latency(),
                    f"{mean_std(ret, 3)}{c.short()}",
                ]
            )
        head = [*HEAD[:2], "Loss", *HEAD[2:]] if by_loss else HEAD
        lines += table(head, rows, "lll" + "r" * 6 if by_loss else "ll" + "r" * 6)
        lines += [
            "",
            "Rows are ordered by dev average macro-F1. Retention = student test avg F1 / its teacher's test avg F1.",
            "",
        ]
        lines += seeds_note(cs)
        if not comparable(cs):
            continue
        if len(cs) >= 2:
            lines += [bootstrap_line(cs[0], cs[1])[0], ""]
        rel = pareto_plot(  # backbones differ in architecture: their latencies differ for real
            [f"{c.tag('vision')}/{c.tag('text')}" + (f" {c.tag('loss')}" if by_loss else "") for c in cs],
            [c.fair.mean("latency_ms") for c in cs],
            [f1_interval(c) for c in cs],
            f"{ds}: F1 against latency ({seeds_phrase(cs[0].matched)})",
            ctx.img / f"{ds}_backbone_pareto.png",
        )
        lines += [f"![F1 against latency]({rel})", ""]
    return [Document("backbones.md", sweeps, lines)]
