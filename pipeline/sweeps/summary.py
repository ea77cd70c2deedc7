"""The sweep's summary as markdown: the parent run's description in the MLflow UI, so the result
shows where the runs are, without opening docs/. The same rows as the command's own table."""

from __future__ import annotations

from collections.abc import Sequence

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
