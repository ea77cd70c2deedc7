"""docs/kd_sensitivity.md (seed 004's ablations): test avg F1 over KD temperature τ and weight α,
as a table, a heatmap and lines, and each setting against the loss sweep's student trained without
distillation (`none`) of the same dataset, on the seeds both FINISHED."""

from __future__ import annotations

import numpy as np

from reports.groups import Group, comparable, configs
from reports.markdown import table
from reports.matched import bootstrap_line, kd_help
from reports.mcnemar import chosen_pairs, mcnemar_section
from reports.plots import heatmap, lines, seeds_phrase
from reports.query import Sweep
from reports.registry import Context, Document, register
from reports.sections import seeds_note
from reports.stats import fmt, seeds_text
from reports.teacher import MARK, figures_and_note, no_better, of, reach, teachers
from reports.teacher_seeds import variance_section, without_teacher_seed


def _key(c: Group) -> tuple[float, float]:
    return c.num("loss.temperature"), c.num("loss.alpha")


def baselines(ctx: Context) -> dict[str, Group]:
    """Per dataset, the `none` configuration of its loss sweep."""
    out = {}
    for s in ctx.of("loss"):
        base = next((c for c in configs(s) if c.tag("loss") == "none"), None)
        if base is not None:
            out[s.dataset] = base
    return out


def kd_section(
    cs: list[Group], base: Group | None, ds: str, seeds: tuple[int, ...], teacher: Group | None = None
) -> list[str]:
    """Does KD help? Each τ, α setting (and, first, the teacher) against the dataset's `none`
    baseline."""
    lines = ["### Does KD help?", ""]
    if base is None:
        return lines + [
            f"No `none` (no-KD) baseline run for this dataset: run `make sweep-loss DATASET={ds}`.",
            "",
        ]
    shared = tuple(s for s in seeds if s in base.seeds)
    if not shared:
        return lines + [f"The `none` baseline of the loss sweep shares no seed with {seeds_text(seeds)}.", ""]
    lines += [f"Baseline (no KD, loss sweep): test avg F1 {base.cell('test/avg_f1')}.", ""]
    part, _ = kd_help(
        sorted(cs, key=_key),
        base,
        shared,
        lambda c: [c.param("loss.temperature"), c.param("loss.alpha")],
        ["τ", "α"],
        "τ, α setting",
        lambda c: f"τ={c.param('loss.temperature')} α={c.param('loss.alpha')}",
        (f"teacher {MARK}", teacher) if teacher is not None else None,
    )
    said = no_better(teacher, base, shared)
    return lines + part + (said + [""] if said else [])


@register("kd", order=30)
def report(sweeps: list[Sweep], ctx: Context) -> list[Document]:
    """One document for every KD sweep: the τ x α grid per dataset, then does KD help."""
    out = ["# KD temperature and alpha sensitivity", ""]
    base = baselines(ctx)
    for sweep in sweeps:
        ds, cs = sweep.dataset, configs(sweep)
        out += [f"## {ds}", "", f"Sweep run `{sweep.run_id}` ({sweep.start_time}).", ""]
        if not cs:
            out += ["No FINISHED student run in this sweep.", ""]
            continue
        temps = sorted({_key(c)[0] for c in cs})
        alphas = sorted({_key(c)[1] for c in cs})
        at = {_key(c): c for c in cs}
        grid = np.full((len(temps), len(alphas)), np.nan)
        rows = []
        for i, t in enumerate(temps):
            row = []
            for j, a in enumerate(alphas):
                c = at.get((t, a))
                row.append(c.cell("test/avg_f1") if c else "missing")
                grid[i, j] = c.fair.mean("test/avg_f1") if c else np.nan
            rows.append([fmt(t, 1), *row])
        out += ["Test avg macro-F1 (rows: temperature τ, columns: α):", ""]
        taught = teachers(cs)
        # a grid has no row for a model without τ and α: the teachers' figures stand under it
        out += table(["τ \\ α", *(fmt(a, 2) for a in alphas)], rows, "l" + "r" * len(alphas)) + [""]
        out += figures_and_note(taught, cs) + seeds_note(cs)
        if not comparable(cs):
            continue
        best, seeds = cs[0], cs[0].matched
        out += [
            f"Best on dev: τ={best.param('loss.temperature')}, α={best.param('loss.alpha')} "
            f"(dev avg F1 {fmt(best.fair.mean('best_dev/avg_f1'))}, test {fmt(best.fair.mean('test/avg_f1'))}; "
            f"{seeds_text(seeds)}).",
            "",
        ]
        if len(cs) >= 2:
            out += [bootstrap_line(cs[0], cs[1])[0], ""]
        closest = [line[2:] for line in reach(taught)]  # a paragraph here, not a list item
        out += closest + ([""] if closest else [])
        out += mcnemar_section(chosen_pairs(cs, of(taught, cs[0]), MARK), seeds, f"### McNemar tests ({ds})")
        out += variance_section(cs, taught, without_teacher_seed, f"### Teacher variance ({ds})")
        labels = ([fmt(a, 2) for a in alphas], [fmt(t, 1) for t in temps])
        rel = heatmap(grid, *labels, ("α", "τ"), seeds_phrase(seeds), ctx.img / f"{ds}_kd_heatmap.png")
        out.append(f"![τ x α heatmap]({rel})")
        series = [(f"α={fmt(a, 2)}", grid[:, j]) for j, a in enumerate(alphas)]
        rel = lines(temps, series, "temperature τ", seeds_phrase(seeds), ctx.img / f"{ds}_kd_temperature.png")
        out += ["", f"![temperature sensitivity]({rel})", ""]
        only = taught[0].teacher if len(taught) == 1 else None  # several: no one row against `none`
        out += kd_section(cs, base.get(ds), ds, seeds, only)
    return [Document("kd_sensitivity.md", sweeps, out)]
