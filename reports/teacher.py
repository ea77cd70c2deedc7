"""The teacher in the flat studies' comparison tables: the first thing to check when no student
beats `none` is whether the teacher itself does.

A student run names its teacher (tag `teacher_run_id`); teacher runs are tagged stage=teacher.
The teachers of a table are those its students distilled from, grouped like the students (one
`Group` over the seeds, with the students' asked and matched seeds, so a cell is the same mean ±
std over seeds as a student's). Students that share a teacher run share a teacher row: one row
for a loss sweep (one teacher per seed), one per configuration where the sweep varies the
teacher too (fusion). Teacher rows are for reading only: they are never in `configs`, so no
ranking, best choice, recommendation or interval among the students counts them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reports.groups import Group
from reports.matched import paired_f1
from reports.names import millions, model, shrunk
from reports.query import runs_by_id
from reports.stats import fmt

MARK = "*"  # the teacher rows' mark; `note` is its footnote


@dataclass
class Taught:
    """A teacher (over seeds) and the table's student configurations that distilled from it."""

    teacher: Group
    students: list[Group]

    @property
    def label(self) -> str:
        """`teacher (vit + bert, cross_attention) *`: what a table's first cell of its row says."""
        return f"teacher ({model(self.teacher.runs.iloc[0], 'teacher')}, {self.teacher.tag('fusion')}) {MARK}"


def _ids(c: Group) -> set[str]:
    col = c.runs.get("tags.teacher_run_id")
    return {t for t in col if isinstance(t, str) and t} if col is not None else set()


def teachers(cs: list[Group]) -> list[Taught]:
    """The FINISHED teachers of the configurations `cs`, in the order of the first student each
    taught. Students sharing a teacher run share its row (a `none` student that ran before the
    teacher existed names none and joins no row)."""
    ids = {c.label: _ids(c) for c in cs}
    runs = runs_by_id(sorted(set().union(*ids.values()))) if cs else None
    if runs is None or runs.empty or "tags.stage" not in runs:
        return []
    runs = runs[(runs["status"] == "FINISHED") & (runs["tags.stage"] == "teacher")]
    known = set(runs["run_id"])
    rows: list[tuple[set[str], list[Group]]] = []
    for c in cs:
        mine = ids[c.label] & known
        if not mine:
            continue
        hit = [r for r in rows if r[0] & mine]
        merged = (mine.union(*(r[0] for r in hit)), [s for r in hit for s in r[1]] + [c])
        rows = [r for r in rows if all(r is not h for h in hit)] + [merged]
    out = []
    for tids, students in rows:
        students = sorted(students, key=cs.index)
        own = runs[runs["run_id"].isin(tids)].sort_values("run_id").reset_index(drop=True)
        head = students[0]
        out.append(Taught(Group("teacher", own, head.asked, head.matched), students))
    return sorted(out, key=lambda t: cs.index(t.students[0]))


def of(taught: list[Taught], c: Group) -> Group | None:
    """The teacher of configuration `c`; the only teacher of the table when `c` names none
    (a `none` student that ran before its sweep's teacher existed)."""
    mine = next((t.teacher for t in taught if c in t.students), None)
    return mine if mine is not None or len(taught) != 1 else taught[0].teacher


def teacher_seed(g: Group) -> str | None:
    """The teacher seed of a configuration's or a teacher's runs (tag `teacher_seed`), else None."""
    col = g.runs.get("tags.teacher_seed")
    vals = sorted({str(v) for v in col.dropna()}) if col is not None else []
    return vals[0] if vals else None


def protocol(cs: list[Group]) -> str:
    """The sentence naming how the students' teachers were trained."""
    seeds = sorted({s for c in cs if (s := teacher_seed(c)) is not None}, key=int)
    if len(seeds) > 1:
        return (
            f"Teacher protocol: {len(seeds)} teachers (teacher seeds {', '.join(seeds)}), each trained "
            "once and distilled into every configuration and seed; a student that reads no teacher ran once."
        )
    return "Teacher protocol: one teacher per seed, trained once and reused by every student of that seed."


def figures_and_note(taught: list[Taught], students: list[Group]) -> list[str]:
    """For a document without a table row for the teacher: each teacher's test and dev avg F1,
    then `note`."""
    lines = [
        f"{t.label}: test avg F1 {t.teacher.cell('test/avg_f1')}, dev avg F1 {t.teacher.cell('best_dev/avg_f1')}."
        for t in taught
    ]
    return lines + ([""] if taught else []) + note(taught, students)


def note(taught: list[Taught], students: list[Group]) -> list[str]:
    """The footnote of the mark, the models' sizes, and what `(shrunk)` means where it is shown."""
    if not taught:
        return []
    names = ", ".join(f"`{t.teacher.name}`" for t in taught)
    sizes = [f"teacher {s}" for t in taught if (s := _size(t.teacher, "teacher"))]
    if len({model(c.runs.iloc[0], "student") for c in students if c.ok}) == 1:  # one architecture
        sizes += [f"students {s}" for s in [_size(students[0], "student")] if s]
    text = (
        f"`{MARK}` The teacher{'s' if len(taught) > 1 else ''} the students distilled from (run {names}), "
        f"trained on the labels alone, first for reference: never ranked, compared or recommended "
        "among the students." + (f" Sizes: {'; '.join(sizes)}." if sizes else "") + f" {protocol(students)}"
    )
    lines = [text, ""]
    roles = [(t.teacher.runs.iloc[0], "teacher") for t in taught]
    roles += [(c.runs.iloc[0], "student") for c in students if c.ok]
    if any(shrunk(r, role, p) for r, role in roles for p in ("vision", "text")):
        lines += [
            "(shrunk): the named architecture with its depth or width overridden by the profile "
            "(e.g. sweeps/profiles/tiny.yaml), randomly initialised: a test model, not the published one.",
            "",
        ]
    return lines


def _size(g: Group, role: str) -> str:
    """`vit + bert: 0.53 M parameters`; empty for runs that do not name their backbones."""
    name = model(g.runs.iloc[0], role)
    count = g.mean("params")
    return "" if name == "?" else name if np.isnan(count) else f"{name}: {millions(count)} parameters"


def reach(taught: list[Taught]) -> list[str]:
    """A sentence when no student reaches its teacher on test avg F1 (means on the matched
    seeds, the numbers the table ranks by); nothing when one does."""
    pairs = [(t.teacher.fair.mean("test/avg_f1"), s) for t in taught for s in t.students]
    pairs = [(t, s) for t, s in pairs if not np.isnan(t)]
    if not pairs or any(s.fair.mean("test/avg_f1") >= t for t, s in pairs):
        return []
    t, best = max(pairs, key=lambda p: (p[1].fair.mean("test/avg_f1") - p[0], p[1].label))
    whose = "the teacher" if len(taught) == 1 else "its teacher"
    return [
        f"- No student reaches {whose} on test: the closest, `{best.label}`, has test avg F1 "
        f"{fmt(best.fair.mean('test/avg_f1'))} against {whose}'s {fmt(t)}."
    ]


def no_better(
    teacher: Group | None, base: Group | None, seeds: tuple[int, ...], name: str = "none"
) -> list[str]:
    """A sentence when the teacher is no better on test than the student trained without
    distillation (`base`, called `name`): at or below it, or above it within noise (the paired
    bootstrap interval contains 0). Nothing when the teacher is better beyond noise, or one is
    missing."""
    if teacher is None or base is None or not seeds:
        return []
    d = paired_f1(teacher, base, seeds)
    t, b = teacher.on(seeds).mean("test/avg_f1"), base.on(seeds).mean("test/avg_f1")
    if d is None:
        if np.isnan(t) or np.isnan(b) or t > b:
            return []
        how = f"test avg F1 {fmt(t)} against {fmt(b)}; no saved predictions, no interval"
    elif d.sign > 0:
        return []
    else:
        noise = "within noise" if d.sign == 0 else "below it beyond noise"
        how = f"test avg F1 difference {d.diff:+.4f}, interval {d.interval()}: {noise}"
    return [
        f"- The teacher is no better than the student trained without distillation (`{name}`) "
        f"on test ({how}): distilling it has nothing shown to pass on."
    ]
