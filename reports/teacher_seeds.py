"""Teacher variance (a study's `teacher_seeds: k`): k teachers, each trained once with its own
seed and distilled into every configuration and seed. What one reused teacher hides: how much
the teachers differ, how much of a student's spread comes from its teacher rather than its own
seed, and whether a conclusion drawn with one teacher holds with every teacher.

Spreads (sample std): across teachers, the std of a configuration's per-teacher means (each over
the matched seeds); within a teacher, the mean over teachers of the std over seeds."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from reports.groups import Group
from reports.markdown import table
from reports.matched import paired_f1
from reports.stats import fmt, holm_adjusted, mean_std
from reports.teacher import Taught, protocol, teacher_seed


def without_teacher_seed(c: Group) -> str:
    """A configuration's trial label without its teacher seed: what it is across teachers."""
    return re.sub(r"\s*teacher_seed=\d+", "", c.label)


def variance_section(
    cs: list[Group], taught: list[Taught], key: Callable[[Group], str], title: str
) -> list[str]:
    """Teachers' mean ± std, each configuration's test F1 per teacher with its spreads across and
    within teachers, and per teacher the best on dev and what beats `none`; nothing unless two
    or more teacher seeds."""
    by: dict[str, dict[str, Group]] = {}
    free = [c for c in cs if teacher_seed(c) is None]
    for c in cs:
        if (t := teacher_seed(c)) is not None:
            by.setdefault(key(c), {})[t] = c
    tseeds = sorted({t for d in by.values() for t in d}, key=int)
    if len(tseeds) < 2:
        return []
    seeds = cs[0].matched
    teachers = {teacher_seed(t.teacher): t.teacher for t in taught if teacher_seed(t.teacher) is not None}
    t_f1 = [teachers[t].mean("test/avg_f1") for t in tseeds if t in teachers]
    lines = [title, "", protocol(cs), ""]
    rows = [[f"teacher {t}", fmt(teachers[t].mean("test/avg_f1")), fmt(teachers[t].mean("best_dev/avg_f1"))]
            for t in tseeds if t in teachers]  # fmt: skip
    lines += table(["Teacher (seed)", "Test avg F1", "Dev avg F1"], rows, "lrr")
    lines += ["", f"Teachers' test avg F1 over {len(t_f1)} teachers: {mean_std(t_f1)}.", ""]
    head = [
        "Configuration",
        *(f"teacher {t}" for t in tseeds),
        "Across teachers (std)",
        "Within a teacher (std)",
    ]
    cells = []
    for name, per in by.items():
        means = [per[t].fair.mean("test/avg_f1") if t in per else np.nan for t in tseeds]
        within = [
            float(np.std(v, ddof=1)) for g in per.values() if len(v := g.fair.values("test/avg_f1")) > 1
        ]
        known = [m for m in means if not np.isnan(m)]
        across = float(np.std(known, ddof=1)) if len(known) > 1 else np.nan
        cells.append(
            [
                f"`{name}`",
                *(fmt(m) for m in means),
                fmt(across),
                fmt(float(np.mean(within))) if within else "n/a",
            ]
        )
    lines += [
        f"Test avg F1 per teacher (mean over {len(seeds)} seed{'s' if len(seeds) > 1 else ''}); across "
        "teachers: std of the per-teacher means; within a teacher: mean over teachers of the std over seeds.",
        "",
        *table(head, cells, "l" + "r" * (len(head) - 1)),
        "",
    ]
    lines += _holds(by, tseeds, free, key, seeds)
    return lines + [""]


def _holds(
    by: dict[str, dict[str, Group]],
    tseeds: list[str],
    free: list[Group],
    key: Callable[[Group], str],
    seeds: tuple[int, ...],
) -> list[str]:
    """Does the best-on-dev choice, and what beats `none`, hold with every teacher?"""
    best = {}
    for t in tseeds:
        pool = [g[t] for g in by.values() if t in g] + free
        best[t] = key(max(pool, key=lambda g: (g.fair.mean("best_dev/avg_f1"), key(g))))
    out = []
    if len(set(best.values())) == 1:
        out.append(f"- Best on dev with every teacher: `{next(iter(best.values()))}`.")
    else:
        out.append(
            "- The best on dev depends on the teacher: "
            + ", ".join(f"teacher {t}: `{b}`" for t, b in best.items())
            + "."
        )
    nones = [g for g in free if g.tag("loss") == "none"]
    if not nones:
        return out
    pairs = [
        (name, t, g[t], b) for name, g in by.items() for t in tseeds if t in g if (b := _none_of(g[t], nones))
    ]
    judged = holm_adjusted([paired_f1(g, b, seeds) for _, _, g, b in pairs])
    beats: dict[str, list[str]] = {}
    for (name, t, _, _), d in zip(pairs, judged, strict=True):
        if d is not None and d.sign > 0:
            beats.setdefault(name, []).append(t)
    family = sum(d is not None for d in judged)
    said = f"against `none`, paired bootstrap, {family} comparisons Holm-adjusted"
    if not beats:
        out.append(f"- With no teacher is any configuration shown to beat `none` ({said}).")
    for name in by:
        if name in beats:
            which = (
                "every teacher"
                if len(beats[name]) == len(by[name])
                else "teacher " + ", ".join(beats[name]) + " only"
            )
            out.append(f"- `{name}` beats `none` with {which} ({said}).")
    return out


def _none_of(g: Group, nones: list[Group]) -> Group | None:
    """The no-KD configuration a KD configuration is compared with: the one of its backbones,
    else the only one."""
    same = [b for b in nones if (b.tag("vision"), b.tag("text")) == (g.tag("vision"), g.tag("text"))]
    return same[0] if same else nones[0] if len(nones) == 1 else None
