"""The sweep's summary as markdown: the parent run's description in the MLflow UI, so the result
shows where the runs are, without opening docs/. The same rows as the command's own table."""

from __future__ import annotations

import dataclasses
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
