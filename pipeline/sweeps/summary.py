"""The sweep's summary as markdown: the parent run's description in the MLflow UI, so the result
shows where the runs are, without opening docs/. The same rows as the command's own table."""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections.abc import Sequence

from pipeline.config.phases import Phase, choose
from pipeline.sweeps.batch import Row

LIMIT = 7500  # MLflow keeps at most 8000 characters of a tag's value


def ordered(rows: Sequence[Row], mode: str, phased: bool) -> list[Row]:
    """A phased study keeps its plan's order; otherwise best dev first (runs without one last)."""
    if phased:
        return list(rows)
    sign = -1.0 if mode == "max" else 1.0
    return sorted(rows, key=lambda r: (r.dev is None, sign * (r.dev or 0.0)))


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def markdown(study: str, dataset: str, metric: str, rows: Sequence[Row], phased: bool, teachers: int) -> str:
    """Header line, then one table row per configuration, cut (saying how many are left out)
    where MLflow's tag limit would be passed."""
    done = sum(r.status.startswith("FINISHED") for r in rows)
    failed = sum(r.status == "FAILED" for r in rows)
    order = "in the plan's order" if phased else f"sorted by dev {metric}"
    head = [
        f"**kdsweep study `{study}` on `{dataset}`**: {done} of {len(rows)} trial(s) finished"
        + (f", {failed} FAILED" if failed else "")
        + f"; {teachers} teacher(s) trained. Rows {order}; test is shown, never used to choose.",
        "",
        f"| # | configuration | status | dev {metric} | test avg F1 | run / error |",
        "|---|---|---|---|---|---|",
    ]
    lines, size = list(head), sum(len(x) + 1 for x in head)
    for i, r in enumerate(rows, 1):
        where = f"`{r.run_id}`" if r.run_id else (r.error or "").replace("|", "/")[:120]
        line = f"| {i} | {r.label} | {r.status} | {_fmt(r.dev)} | {_fmt(r.test_avg_f1)} | {where} |"
        if size + len(line) + 1 > LIMIT - 120:
            lines.append(f"\n{len(rows) - i + 1} more row(s): see the parent's trials.json and docs/.")
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def chosen(rows: Sequence[Row], plan: Sequence[Phase], metric: str, mode: str) -> tuple[Row, str] | None:
    """The student run a sweep registers, and the rule that chose it, never from test: a study
    ending in a refit phase registers that final model (its configuration was chosen on dev in
    the phases it starts from); otherwise the configuration with the best mean dev value over
    its seeds and folds, and of its runs the one with the best dev. None: nothing FINISHED."""
    done = [r for r in rows if r.status.startswith("FINISHED") and r.run_id]
    refit = [p for p in plan if p.refit]
    if refit:
        final = [r for r in done if r.phase == refit[-1].name]
        if final:
            rule = f"phase {refit[-1].name}: refit on train+dev of the configuration chosen on dev ({metric}, {mode})"
            return final[0], rule
    refit_names = {p.name for p in refit}
    candidates = [dataclasses.asdict(r) for r in done if r.dev is not None and r.phase not in refit_names]
    choice = choose(candidates, mode)
    if choice is None:
        return None
    runs = [r for r in done if r.run_id in choice.run_ids]
    best = (max if mode == "max" else min)(runs, key=lambda r: r.dev)
    rule = f"best mean dev {metric} ({mode}) over seeds and folds; of its runs, the best dev"
    return best, rule


def _by_config(rows: Sequence[Row], best: Row, plan: Sequence[Phase]) -> list[list[Row]]:
    """The configurations `chosen` chose among (FINISHED runs with a dev value, by what defines
    them), in its order: refit's pool is the phases the refit starts from, else every phase but
    refits."""
    refit = [p for p in plan if p.refit]
    pool = set(refit[-1].best_of) if refit and best.phase == refit[-1].name else None
    groups: dict[tuple[str, ...], list[Row]] = {}
    for r in rows:
        if not (r.status.startswith("FINISHED") and r.run_id and r.dev is not None and r.dev == r.dev):
            continue
        if (pool is None and r.phase not in {p.name for p in refit}) or (pool and r.phase in pool):
            groups.setdefault(tuple(r.defining), []).append(r)
    return list(groups.values())


def _config(row: Row) -> str:
    """A row's configuration: its label without the seed and fold."""
    return re.sub(r" seed=\d+( fold=\d+)?$", "", row.label)


def lead(rows: Sequence[Row], plan: Sequence[Phase], best: Row, metric: str, mode: str) -> str:
    """The chosen configuration's mean dev value and whether its lead over the runner-up is
    beyond noise: a paired t-interval (reports.stats.paired_folds) over the seeds and folds
    both ran, where there are two or more; otherwise the difference, said plainly not to be
    evidence."""
    sign = 1.0 if mode == "max" else -1.0
    configs = sorted(_by_config(rows, best, plan), key=lambda g: -sign * statistics.fmean(r.dev for r in g))
    if not configs:
        return ""
    top = configs[0]
    mean = statistics.fmean(r.dev for r in top)
    head = f"Its configuration `{_config(top[0])}`: mean dev {metric} {mean:.4f} over {len(top)} run(s)"
    if len(configs) < 2:
        return f"{head}; no runner-up (one configuration had a dev value)."
    second = configs[1]
    gap = sign * (mean - statistics.fmean(r.dev for r in second))
    head += f"; runner-up `{_config(second[0])}`, lead {gap:+.4f}"
    a, b = ({(r.seed, r.fold): sign * r.dev for r in g} for g in (top, second))
    shared = sorted(set(a) & set(b), key=str)
    from reports.stats import paired_folds  # numbers only (numpy, scipy.special): no circle

    d = paired_folds({i: a[k] for i, k in enumerate(shared)}, {i: b[k] for i, k in enumerate(shared)})
    if d is None:  # under two runs in common
        runs = (
            "no seed or fold in common" if not shared else "one seed" if shared[0][1] is None else "one fold"
        )
        return f"{head}; {runs}: cannot tell noise from effect (a single dev difference is not evidence)."
    verdict = "beyond noise" if d.clear else "within noise"
    return f"{head}; paired over {len(shared)} seed/fold runs, 95 % interval {d.interval()}: {verdict}."
