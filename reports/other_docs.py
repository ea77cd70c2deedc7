"""The fusion summary (seed 001), KD sensitivity (seed 004's ablations) and backbone documents.

Comparisons (best on dev, bold column bests, differences, plots) use the seeds every compared
configuration FINISHED; cells show each configuration's own runs (see `Config`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reports.common import Config, comparable, configs, seeds_note, tasks
from reports.compare import bootstrap_line, interval, kd_help, seeds_text
from reports.plots import figure, pareto_plot, save, seeds_phrase
from reports.query import Sweep, runs_by_id
from reports.stats import fmt, mean_std


def fusion_document(sweep: Sweep, img: Path) -> list[str]:
    """One row per fusion type at its best hyper-parameters on dev; best of each column bold."""
    ts, ds = tasks(sweep), sweep.dataset
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
    best: dict[str, Config] = {}
    for c in cs:  # ordered best dev first (matched seeds): the first of each fusion wins
        best.setdefault(c.tag("fusion"), c)
    metrics = [f"test/{t}/{m}" for m in ("acc", "f1", "auc") for t in ts]
    tops = {m: max(c.fair.mean(m) for c in best.values()) for m in metrics}
    lines += [
        "| Fusion Type | Best configuration (dev) | "
        + " | ".join(m.replace("/", "_")[5:] for m in metrics)
        + " |",
        "|---|---|" + "---:|" * len(metrics),
    ]
    order = list(best.values())
    for c in order:
        cells = [
            (f"**{c.cell(m, 3)}**" if np.isclose(c.fair.mean(m), tops[m]) else c.cell(m, 3)) for m in metrics
        ]
        lines.append(f"| {c.tag('fusion')} | `{c.label}` | " + " | ".join(cells) + " |")
    seeds = cs[0].matched
    lines += ["", f"Bold: the best of each column on {seeds_text(seeds)}.", "", "Interpretation:", ""]
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
    fig, ax = figure()
    ax.bar([c.tag("fusion") for c in order], [c.fair.mean("test/avg_f1") for c in order], color="#55A868")
    ax.set_ylabel("test avg macro-F1")
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.set_title(f"{ds}: fusion comparison ({seeds_phrase(seeds)})", fontsize=9)
    lines += ["", f"![fusion comparison]({save(fig, img / f'{ds}_fusion.png')})", ""]
    rel = pareto_plot(  # fusion modules differ in architecture: their latencies differ for real
        [c.tag("fusion") for c in order],
        [c.fair.mean("latency_ms") for c in order],
        [interval(c) for c in order],
        f"{ds}: F1 against latency per fusion",
        img / f"{ds}_fusion_pareto.png",
    )
    return lines + [f"![F1 against latency]({rel})", ""]


def _kd_key(c: Config) -> tuple[float, float]:
    return float(c.param("loss.temperature")), float(c.param("loss.alpha"))


def kd_document(sweeps: list[Sweep], baselines: dict[str, Config], img: Path) -> list[str]:
    lines = ["# KD temperature and alpha sensitivity", ""]
    for sweep in sweeps:
        ds, cs = sweep.dataset, configs(sweep)
        lines += [f"## {ds}", "", f"Sweep run `{sweep.run_id}` ({sweep.start_time}).", ""]
        if not cs:
            lines += ["No FINISHED student run in this sweep.", ""]
            continue
        temps = sorted({_kd_key(c)[0] for c in cs})
        alphas = sorted({_kd_key(c)[1] for c in cs})
        at = {_kd_key(c): c for c in cs}
        lines += [
            "Test avg macro-F1 (rows: temperature τ, columns: α):",
            "",
            "| τ \\ α | " + " | ".join(fmt(a, 2) for a in alphas) + " |",
            "|---|" + "---:|" * len(alphas),
        ]
        grid = np.full((len(temps), len(alphas)), np.nan)
        for i, t in enumerate(temps):
            row = []
            for j, a in enumerate(alphas):
                c = at.get((t, a))
                row.append(c.cell("test/avg_f1") if c else "missing")
                grid[i, j] = c.fair.mean("test/avg_f1") if c else np.nan
            lines.append(f"| {fmt(t, 1)} | " + " | ".join(row) + " |")
        lines += [""] + seeds_note(cs)
        if not comparable(cs):
            continue
        best, seeds = cs[0], cs[0].matched
        lines += [
            f"Best on dev: τ={best.param('loss.temperature')}, α={best.param('loss.alpha')} "
            f"(dev avg F1 {fmt(best.fair.mean('best_dev/avg_f1'))}, test {fmt(best.fair.mean('test/avg_f1'))}; "
            f"{seeds_text(seeds)}).",
            "",
        ]
        if len(cs) >= 2:
            lines += [bootstrap_line(cs[0], cs[1])[0], ""]
        fig, ax = figure(4.5, 3.5)
        im = ax.imshow(grid, cmap="viridis")
        ax.set_xticks(range(len(alphas)), [fmt(a, 2) for a in alphas])
        ax.set_yticks(range(len(temps)), [fmt(t, 1) for t in temps])
        ax.set_xlabel("α")
        ax.set_ylabel("τ")
        ax.set_title(seeds_phrase(seeds), fontsize=9)
        fig.colorbar(im, label="test avg F1")
        lines.append(f"![τ x α heatmap]({save(fig, img / f'{ds}_kd_heatmap.png')})")
        fig, ax = figure()
        for j, a in enumerate(alphas):
            ax.plot(temps, grid[:, j], marker="o", label=f"α={fmt(a, 2)}")
        ax.set_xlabel("temperature τ")
        ax.set_ylabel("test avg macro-F1")
        ax.set_title(seeds_phrase(seeds), fontsize=9)
        ax.legend()
        lines += [
            "",
            f"![temperature sensitivity]({save(fig, img / f'{ds}_kd_temperature.png')})",
            "",
            "### Does KD help?",
            "",
        ]
        base = baselines.get(ds)
        if base is None:
            lines += [
                "No `none` (no-KD) baseline run for this dataset: run `make sweep-loss DATASET=" + ds + "`.",
                "",
            ]
            continue
        shared = tuple(s for s in seeds if s in base.seeds)
        if not shared:
            lines += [f"The `none` baseline of the loss sweep shares no seed with {seeds_text(seeds)}.", ""]
            continue
        lines += [f"Baseline (no KD, loss sweep): test avg F1 {base.cell('test/avg_f1')}.", ""]
        part, _ = kd_help(
            sorted(cs, key=_kd_key),
            base,
            shared,
            lambda c: [c.param("loss.temperature"), c.param("loss.alpha")],
            ["τ", "α"],
            "τ, α setting",
            lambda c: f"τ={c.param('loss.temperature')} α={c.param('loss.alpha')}",
        )
        lines += part
    return lines


def backbone_document(sweeps: list[Sweep], img: Path) -> list[str]:
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
        lines += [
            "| Vision | Text | Test avg F1 | Test AUC (mean over tasks) | Params (M) | Size (MB) | Latency (ms) | Retention |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for c in cs:
            auc = [float(np.mean([r[f"metrics.test/{t}/auc"] for t in ts])) for _, r in c.runs.iterrows()]
            ret = [
                r["metrics.test/avg_f1"] / t_f1[r["tags.teacher_run_id"]]
                for _, r in c.runs.iterrows()
                if r["tags.teacher_run_id"] in t_f1
            ]
            lines.append(
                f"| {c.tag('vision')} | {c.tag('text')} | {c.cell('test/avg_f1')} | {mean_std(auc)}{c.short()} | "
                f"{fmt(c.mean('params') / 1e6, 2)} | {fmt(c.mean('size_mb'), 2)} | {c.latency()} | {mean_std(ret, 3)}{c.short()} |"
            )
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
            [f"{c.tag('vision')}/{c.tag('text')}" for c in cs],
            [c.fair.mean("latency_ms") for c in cs],
            [interval(c) for c in cs],
            f"{ds}: F1 against latency ({seeds_phrase(cs[0].matched)})",
            img / f"{ds}_backbone_pareto.png",
        )
        lines += [f"![F1 against latency]({rel})", ""]
    return lines
