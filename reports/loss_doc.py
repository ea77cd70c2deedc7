"""docs/loss_explore.md: the structure of seed note 000, with honest comparisons."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reports.common import MARGIN, Config, chance, configs, figure, pareto_plot, save, task_field, tasks
from reports.query import Sweep, predictions
from reports.stats import fmt, paired_bootstrap


def bootstrap_line(a: Config, b: Config) -> tuple[str, bool]:
    """(sentence, clear) for the top two configurations on dev, from seed-paired test predictions."""
    seeds_a = dict(zip(a.runs["params.seed"], a.runs["run_id"], strict=True))
    seeds_b = dict(zip(b.runs["params.seed"], b.runs["run_id"], strict=True))
    common = sorted(set(seeds_a) & set(seeds_b))
    if not common:
        return f"`{a.label}` and `{b.label}` share no seed: no paired comparison.", False
    pa, pb = predictions(seeds_a[common[0]]), predictions(seeds_b[common[0]])
    if pa is None or pb is None:
        return "test predictions are missing: no bootstrap interval.", False
    diff, lo, hi = paired_bootstrap(pa, pb)
    clear = lo > 0 or hi < 0
    verdict = (
        f"`{a.label if diff > 0 else b.label}` is better on test"
        if clear
        else "no clear winner: the interval contains 0"
    )
    text = (
        f"Top two on dev, `{a.label}` vs `{b.label}`: test avg F1 difference {diff:+.4f}, paired bootstrap "
        f"95 % interval [{lo:+.4f}, {hi:+.4f}] (seed {common[0]}, 1000 resamples): {verdict}."
    )
    return text, clear


def _fastest_line(cs: list[Config], fastest: Config) -> str:
    """The fastest configuration, unless they all share one architecture: then the spread is
    measurement noise (machine load, trials side by side), and the line says so."""
    arch = {(c.tag("vision"), c.tag("text"), c.tag("fusion"), c.param("student.fusion.layers")) for c in cs}
    lat = [c.mean("latency_ms") for c in cs]
    if len(arch) == 1 and len(cs) > 1:
        return (
            f"- Latency: every student here has the same architecture, so the spread "
            f"({fmt(min(lat), 2)}-{fmt(max(lat), 2)} ms) is measurement noise, not an effect of the loss."
        )
    return f"- Fastest: `{fastest.tag('loss')}` ({fmt(fastest.mean('latency_ms'), 2)} ms median)."


def section(sweep: Sweep, img: Path) -> tuple[list[str], str | None]:
    ts, cs = tasks(sweep), configs(sweep)
    ds = sweep.dataset
    lines = [
        f"## {ds}: Effect of Loss Type",
        "",
        f"Sweep run `{sweep.run_id}` ({sweep.start_time}).",
        "",
        "Task mapping:",
        "",
    ]
    lines += [f"- Task {i}: `{t}` (label field `{task_field(sweep, t)}`)" for i, t in enumerate(ts, 1)] + [""]
    if not cs:
        return lines + ["No FINISHED student run in this sweep.", ""], None
    lines += [
        f"### Test Performance Overview ({ds})",
        "",
        "| Run ID | Loss | " + " | ".join(f"Test {t} F1" for t in ts) + " | Avg F1 | Test infer (ms) |",
        "|---|---|" + "---:|" * len(ts) + "---:|---:|",
    ]
    for c in cs:
        cells = [c.cell(f"test/{t}/f1") for t in ts]
        lines.append(
            f"| `{c.name}` | {c.tag('loss')} | "
            + " | ".join(cells)
            + f" | {c.cell('test/avg_f1')} | {c.latency()} |"
        )
    lines += [
        "",
        "Rows are ordered by dev average macro-F1 (the selection metric); test numbers are reported, "
        "never used to choose. Latency: median (p90) of 50 timed batch-1 passes.",
        "",
    ]
    level = sum(chance(sweep, t) for t in ts) / len(ts)
    baseline = next((c for c in cs if c.tag("loss") == "none"), None)
    collapsed = [c for c in cs if c.mean("test/avg_f1") <= level + MARGIN]
    below = [
        c
        for c in cs
        if baseline and c is not baseline and c.mean("test/avg_f1") < baseline.mean("test/avg_f1") - MARGIN
    ]
    best, fastest = cs[0], min(cs, key=lambda c: (c.mean("latency_ms"), c.label))
    lines += [
        f"### {ds} Observations",
        "",
        f"- Best on dev: `{best.tag('loss')}` (dev avg F1 {best.cell('best_dev/avg_f1')}, test avg F1 {best.cell('test/avg_f1')}).",
        _fastest_line(cs, fastest),
        f"- Chance level (uniform guessing) of the average macro-F1: {fmt(level)}.",
    ]
    for c in collapsed:
        lines.append(
            f"- Collapsed: `{c.tag('loss')}` (test avg F1 {c.cell('test/avg_f1')}, within {MARGIN} of chance)."
        )
    for c in below:
        lines.append(
            f"- Below the no-KD baseline: `{c.tag('loss')}` (test avg F1 {c.cell('test/avg_f1')} vs `none` "
            f"{baseline.cell('test/avg_f1')})."
        )
    clear = True
    if len(cs) >= 2:
        text, clear = bootstrap_line(cs[0], cs[1])
        lines.append(f"- {text}")
    safe = next((c for c in cs if c.tag("loss") == "vanilla"), baseline)
    bad = sorted({c.tag("loss") for c in collapsed + below})
    choice = (
        f"`{best.tag('loss')}`"
        if clear
        else f"no clear winner between `{cs[0].tag('loss')}` and `{cs[1].tag('loss')}`"
    )
    lines += [
        "",
        f"**{ds} takeaway:**",
        "",
        f"- **Best choice:** {choice}.",
        f"- **Safe baseline:** `{safe.tag('loss')}`." if safe else "- **Safe baseline:** none in this sweep.",
        "- **Not recommended:** " + (", ".join(f"`{b}`" for b in bad) if bad else "nothing collapsed") + ".",
        "",
    ]
    fig, ax = figure()
    names = [c.tag("loss") for c in cs]
    means = [c.mean("test/avg_f1") for c in cs]
    errs = [
        float(np.std(c.values("test/avg_f1"), ddof=1)) if len(c.values("test/avg_f1")) > 1 else 0.0
        for c in cs
    ]
    ax.bar(names, means, yerr=errs, capsize=4, color="#4C72B0")
    ax.axhline(level, color="grey", linestyle="--", label="chance")
    ax.set_ylabel("test avg macro-F1")
    ax.set_title(f"{ds}: F1 per loss (error bars: std over seeds)")
    ax.legend()
    rel = save(fig, img / f"{ds}_loss_f1.png")
    lat = [c.mean("latency_ms") for c in cs]
    rel2 = pareto_plot(
        [c.tag("loss") for c in cs], lat, means, f"{ds}: F1 against latency", img / f"{ds}_loss_pareto.png"
    )
    lines += [f"![F1 per loss]({rel})", "", f"![F1 against latency]({rel2})", ""]
    return lines, (best.tag("loss") if clear else None)


def document(sweeps: list[Sweep], img: Path) -> list[str]:
    lines = [
        "# Loss Exploration",
        "",
        "Distillation losses compared per dataset (studies of kind `loss`).",
        "",
    ]
    best: dict[str, str | None] = {}
    for s in sweeps:
        part, best[s.dataset] = section(s, img)
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
    return lines + [""]
