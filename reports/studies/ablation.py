"""docs/ablation.md (sweeps/ablation.yaml, issue 29): the students with one modality against the
student with both, and the student configuration chosen on dev under each test-time perturbation
it was scored under (`eval.perturbations`, pipeline/training/perturb.py), with paired bootstrap
95 % intervals over the seeds every configuration FINISHED. Test numbers are reported, never
used to choose."""

from __future__ import annotations

import re

import numpy as np

from reports.groups import Group, comparable, configs
from reports.markdown import table
from reports.matched import BETTER, paired_f1
from reports.query import Sweep, predictions
from reports.registry import Context, Document, register
from reports.resample import RESAMPLES, f1_scorer, paired, tasks_of
from reports.sections import seeds_note
from reports.stats import Diff, Verdicts, fmt, holm_adjusted, mean_std, seeds_text
from reports.teacher import figures_and_note, teachers

ORDER = ("both", "image", "text")
NAMES = {"both": "image + text", "image": "image only", "text": "text only"}
# the drop is clean - perturbed: above 0 the perturbation costs F1
HURTS = Verdicts("hurts", "helps", "within noise (interval contains 0)")
METRIC = re.compile(r"^metrics\.test_perturbed/(.+)/avg_f1$")


def _modalities(c: Group) -> str:
    return c.param("student.modalities") or "both"


def _kind(name: str) -> tuple[int, float, str]:
    """Report order: shuffled captions, image noise by std, missing image, missing text, others."""
    noise = re.fullmatch(r"image_noise_(.+)", name)
    if noise:
        return 1, float(noise.group(1)), name
    rank = {"captions_shuffled": 0, "image_missing": 2, "text_missing": 3}
    return rank.get(name, 4), 0.0, name


def _what(name: str) -> tuple[str, str]:
    """(a reader's description, the modality the perturbation alters)."""
    noise = re.fullmatch(r"image_noise_(.+)", name)
    if noise:
        return f"Gaussian image noise, std {noise.group(1)} of the pixel range", "image"
    known = {
        "captions_shuffled": ("captions shuffled across samples", "text"),
        "image_missing": ("image missing (its embedding zeroed)", "image"),
        "text_missing": ("text missing (its embedding zeroed)", "text"),
    }
    return known.get(name, (name, ""))


def _names(sweep: Sweep) -> list[str]:
    """Every perturbation some run of the sweep was scored under, in report order."""
    found = {m.group(1) for col in sweep.runs.columns if (m := METRIC.match(col))}
    return sorted(found, key=_kind)


def _method(family: int) -> str:
    """How a table's verdicts are read: alone by the interval, in a family by Holm-adjusted p."""
    return (
        f"The {family} p-values are Holm-adjusted as one family and the verdicts read from them "
        "(adjusted p < 0.05); the intervals are unadjusted."
        if family > 1
        else "Verdict: the interval above 0, below 0, or containing it."
    )


def _family(diffs: list[Diff | None]) -> int:
    return next((d.family for d in diffs if d is not None), 1)


def modalities_section(cs: list[Group]) -> list[str]:
    """The student configurations, each against `both` (paired by seed and test sample), the
    differences judged as one family."""
    by = {_modalities(c): c for c in cs}
    both = by.get("both")
    shown = [by[m] for m in [m for m in ORDER if m in by] + sorted(set(by) - set(ORDER))]
    others = [c for c in shown if c is not both]
    judged = holm_adjusted([paired_f1(c, both, c.matched) if both is not None else None for c in others])
    diff_of = dict(zip([c.label for c in others], judged, strict=True))
    rows, said = [], []
    for c in shown:
        name = NAMES.get(_modalities(c), _modalities(c))
        cells = [name, c.cell("test/avg_f1"), c.cell("best_dev/avg_f1")]
        d = diff_of.get(c.label)
        if c is both:
            rows.append([*cells, "reference", "", "", ""])
        elif d is None:
            why = "no predictions" if both is not None else "no `both` run"
            rows.append([*cells, "n/a", why, "n/a", "not tested"])
        else:
            rows.append([*cells, f"{d.diff:+.4f}", d.interval(), d.p_cell(), d.verdict(BETTER)])
            said.append((name, d))
    family = _family(judged)
    lines = [
        "### Student modalities",
        "",
        *table(
            [
                "Student",
                "Test avg F1",
                "Dev avg F1",
                "Δ test avg F1 vs both",
                "95 % interval",
                "p" + (" (Holm)" if family > 1 else ""),
                "Verdict",
            ],
            rows,
            "lrrrrrl",
        ),
        "",
        f"Δ: paired by seed and test sample over {seeds_text(cs[0].matched)}; 95 % interval and "
        f"two-sided p from {RESAMPLES} bootstrap resamples of the test set. {_method(family)} "
        "Cells: mean ± std over each student's seeds.",
        "",
    ]
    beyond = [f"{name} ({d.verdict(BETTER)}, {d.diff:+.4f})" for name, d in said if d.clear]
    if beyond:
        lines.append(f"Beyond noise against both modalities: {', '.join(beyond)}.")
    elif said:
        lines.append("**No single-modality student differs from the student with both beyond noise.**")
    return lines + ([""] if beyond or said else [])


def _perturbed_diff(c: Group, name: str, seeds: tuple[int, ...]) -> Diff | None:
    """Clean minus perturbed test avg F1 of `c` over `seeds`, paired by seed and test sample."""
    if not seeds:
        return None
    try:
        runs = [c.run_of(s) for s in seeds]
    except (IndexError, KeyError):
        return None
    clean = [predictions(r) for r in runs]
    bad = [predictions(r, f"predictions/perturbed/{name}.csv") for r in runs]
    if any(p is None for p in clean + bad):
        return None
    try:
        return paired(clean, bad, f1_scorer(tasks_of(clean[0])), tuple(seeds))
    except ValueError:  # scored on different samples
        return None


def perturbation_section(cs: list[Group], names: list[str]) -> list[str]:
    """The configuration chosen on dev, clean and under each perturbation, with the drop; the
    drops judged as one family."""
    chosen, seeds = cs[0], cs[0].matched
    m = _modalities(chosen)
    fair = chosen.fair
    lines = [
        "### The chosen student under test-time perturbations",
        "",
        f"Chosen on dev: **{NAMES.get(m, m)}** (dev avg F1 {fmt(fair.mean('best_dev/avg_f1'))}, "
        f"{seeds_text(seeds)}; test never used to choose).",
        "",
    ]
    if not names:
        return lines + [
            "No run of this sweep was scored under perturbations (`eval.perturbations` unset).",
            "",
        ]
    seed = chosen.param("eval.perturbations.seed")
    lines += [
        "Each perturbation alters the test inputs only, after the run's own test evaluation, whose "
        f"predictions stay the clean ones; every run is scored on the same perturbed test set "
        f"(perturbation seed {seed or '?'}). Clean test avg F1 {fmt(fair.mean('test/avg_f1'))} "
        f"over {seeds_text(seeds)}.",
        "",
    ]
    scored = {n: [v for v in fair.values(f"test_perturbed/{n}/avg_f1") if not np.isnan(v)] for n in names}
    diffs = [_perturbed_diff(chosen, n, seeds) if scored[n] else None for n in names]
    judged = dict(zip(names, holm_adjusted(diffs), strict=True))
    rows, hurt, helped, within, unchanged = [], [], [], [], []
    for name in names:
        what, modality = _what(name)
        values, d = scored[name], judged[name]
        if not values:
            applies = not modality or m in ("both", modality)
            rows.append(
                [
                    what,
                    "n/a",
                    "",
                    "",
                    "",
                    "not scored" if applies else f"not applicable (reads no {modality})",
                ]
            )
        elif d is None:
            drop = fair.mean("test/avg_f1") - float(np.mean(values))
            rows.append([what, mean_std(values), f"{drop:+.4f}", "no predictions", "n/a", "not tested"])
        else:
            same = d.diff == d.lo == d.hi == 0  # every resample scores alike: no prediction moved
            verdict = "no change" if same else d.verdict(HURTS)
            rows.append([what, mean_std(values), f"{d.diff:+.4f}", d.interval(), d.p_cell(), verdict])
            (unchanged if same else hurt if d.sign > 0 else helped if d.sign < 0 else within).append(what)
    family = _family(list(judged.values()))
    lines += table(
        [
            "Perturbation",
            "Test avg F1",
            "Drop (clean − perturbed)",
            "95 % interval",
            "p" + (" (Holm)" if family > 1 else ""),
            "Verdict",
        ],
        rows,
        "lrrrrl",
    )
    lines += [
        "",
        f"Drop: paired by seed and test sample, above 0 the perturbation costs F1; 95 % interval and "
        f"two-sided p from {RESAMPLES} bootstrap resamples of the test set. {_method(family)}",
        "",
    ]
    hurts = (
        f"**Hurts beyond noise: {'; '.join(hurt)}.**"
        if hurt
        else "**No perturbation hurts the chosen student beyond noise.**"
    )
    said = [hurts] + [
        f"{head}: {'; '.join(whats)}."
        for head, whats in (
            ("Within noise", within),
            ("No change at all (the same test F1 on every resample)", unchanged),
            ("Better than clean beyond noise (worth a look)", helped),
        )
        if whats
    ]
    return lines + [" ".join(said), ""]


@register("ablation", order=35)
def report(sweeps: list[Sweep], ctx: Context) -> list[Document]:
    """One document for every ablation sweep: a section per dataset."""
    out = ["# Modality ablations", ""]
    for sweep in sweeps:
        cs = configs(sweep)
        out += [f"## {sweep.dataset}", "", f"Sweep run `{sweep.run_id}` ({sweep.start_time}).", ""]
        if not cs:
            out += ["No FINISHED student run in this sweep.", ""]
            continue
        taught = teachers(cs)
        out += figures_and_note(taught, cs) + seeds_note(cs)
        if not comparable(cs):
            continue
        out += modalities_section(cs) + perturbation_section(cs, _names(sweep))
    return [Document("ablation.md", sweeps, out)]
