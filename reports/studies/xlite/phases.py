"""The phase sections of docs/xlite_experiments.md: baseline students and the backbone decision,
the distillation table with the loss terms of the best distilled run, and τ and α sensitivity
(does KD help: reports.studies.xlite.kd_help). Every choice is the one made on
validation macro AUC; test numbers are shown beside it and never choose."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from reports.csvs import monitor
from reports.groups import Group
from reports.markdown import table
from reports.phased import KD_PHASES, Study
from reports.plots import loss_plot, sensitivity_plot
from reports.query import histories
from reports.stats import fmt


def _failed(row: Group) -> str:
    return "failed: " + "; ".join(why for _, why in row.missing())


def _tied(rows: list[Group], best: Group) -> str:
    """Other experiments with the same validation AUC: the choice among them is by order only."""
    same = [
        r.exp_id for r in rows if r.ok and r is not best and r.run_ids != best.run_ids and r.val == best.val
    ]
    return f", tied with {', '.join(same)}: the earlier experiment is kept, as the study does" if same else ""


def _note(r: Group, best: Group | None, top: Group | None) -> str:
    note = _failed(r) if not r.ok else "chosen on validation" if r is best else ""
    return "best on test (not used to choose)" if r.ok and r is top and r is not best else note


def baseline_section(study: Study) -> list[str]:
    """The students without distillation and the backbone chosen on validation."""
    rows = study.phase("baseline")
    lines = ["### Phase 1: baseline students (no distillation)", ""]
    if not rows:
        return lines + ["No `baseline` phase in this sweep.", ""]
    head = [
        "Exp",
        "CNN",
        "Attention",
        "Val AUC",
        "Val F1",
        "Test AUC",
        "Test F1",
        "Latency (ms)",
        "Size (MB)",
    ]
    best, top = study.best(["baseline"]), study.top_test(rows)
    cells = [
        [
            r.exp_id,
            r.backbone or "?",
            r.attention or "?",
            fmt(r.val),
            fmt(r.macro("best_dev", "f1")),
            fmt(r.test),
            fmt(r.macro("test", "f1")),
            fmt(r.mean("latency_ms"), 2),
            fmt(r.mean("size_mb"), 2),
            fmt(r.mean("peak_rss_mb"), 0),
            _note(r, best, top),
        ]
        for r in rows
    ]
    lines += table([*head, "Peak memory (MB)", "Notes"], cells, "lllrrrrrrr") + [""]
    if best is None:
        return lines + ["**Decision**: none: no baseline FINISHED.", ""]
    lines.append(
        f"**Decision**: `{best.backbone}` ({best.exp_id}), the highest validation macro AUC ({fmt(best.val)}"
        f"{_tied(rows, best)})."
    )
    for r in rows:
        if r.ok and r is not best:
            lines.append(
                f"- `{r.backbone}` ({r.exp_id}): validation AUC {fmt(r.val)} ({r.val - best.val:+.4f}), latency "
                f"{fmt(r.mean('latency_ms'), 2)} ms against {fmt(best.mean('latency_ms'), 2)} ms, size "
                f"{fmt(r.mean('size_mb'), 2)} MB against {fmt(best.mean('size_mb'), 2)} MB."
            )
    if top is not None and top is not best:
        lines.append(f"- On test `{top.backbone}` scores higher ({fmt(top.test)}); test does not choose.")
    return lines + [""]


def kd_section(study: Study, img: Path) -> list[str]:
    """The distilled students, the one chosen on validation and its loss terms per epoch."""
    rows = study.phase("distillation")
    lines = ["### Phase 2: knowledge distillation", ""]
    if not rows:
        return lines + ["No `distillation` phase in this sweep.", ""]
    best, top = study.best(["distillation"]), study.top_test(rows)
    cells = [
        [
            r.exp_id,
            r.backbone or "?",
            r.attention or "?",
            f"{r.num('loss.temperature'):g}",
            f"{r.num('loss.alpha'):g}",
            fmt(r.val),
            fmt(r.test),
            _note(r, best, top),
        ]
        for r in rows
    ]
    lines += table(["Exp", "CNN", "Attention", "τ", "α", "Val AUC", "Test AUC", "Notes"], cells, "lllrrrr")
    lines.append("")
    if best is not None:
        lines += [
            f"Chosen on validation: {best.describe()}, validation AUC {fmt(best.val)}{_tied(rows, best)}.",
            "",
        ]
    return lines + _losses(study, img)


def _losses(study: Study, img: Path) -> list[str]:
    """The weighted loss terms per epoch of the best distilled run on validation (its first seed)."""
    row = study.best(KD_PHASES)
    run = row.first() if row is not None else None
    if run is None:
        return []
    terms = sorted(
        c[len("metrics.") :] for c in run.index if c.startswith("metrics.train/") and c.count("/") == 1
    )
    terms = [t for t in terms if not np.isnan(float(run[f"metrics.{t}"]))]
    curves = {k: v for (_, k), v in histories([run["run_id"]], terms).items()}
    head = f"#### Loss components of {row.exp_id} (best distilled run on validation, seed {run.get('params.seed', '?')})"
    if not curves:
        return [head, "", "No per-epoch training losses were logged.", ""]
    alpha, label = row.num("loss.alpha"), row.param("loss.label_loss") or "the label term"
    lines = [
        head,
        "",
        f"Each term is logged as it enters the loss: `kd` = α·KD (α = {alpha:g}), `{label}` = "
        f"(1 − α)·{label} ({1 - alpha:g}), `focal` = λ·focal (λ = {_focal_weight(row)}); `loss` is their "
        "sum. Mean over the epoch's training batches:",
        "",
    ]
    keys = sorted(curves, key=lambda k: (k != "train/loss", k))
    dev = histories([run["run_id"]], [monitor(run)]).get((run["run_id"], monitor(run)), {})
    steps = sorted({s for c in curves.values() for s in c})
    best_epoch = min(dev, key=lambda s: (-dev[s], s)) if dev else None
    shown = sorted({steps[0], steps[-1], *([best_epoch] if best_epoch in steps else [])})
    cells = [
        [
            f"{s}{' (restored: best validation AUC)' if s == best_epoch else ''}",
            *(fmt(curves[k].get(s)) for k in keys),
        ]
        for s in shown
    ]
    lines += table(["Epoch", *(k.removeprefix("train/") for k in keys)], cells, "l" + "r" * len(keys))
    rel = loss_plot(
        curves,
        f"{study.sweep.dataset}: loss terms of {row.exp_id}",
        img / f"{study.sweep.dataset}_xlite_losses.png",
    )
    return lines + ["", f"![loss components per epoch]({rel})", ""]


def _focal_weight(row: Group) -> str:
    """λ of the xlite_kd loss: its `loss.params` (logged as a dict's text), else the loss's default."""
    try:
        given = ast.literal_eval(row.param("loss.params") or "{}")
    except (ValueError, SyntaxError):
        given = {}
    value = given.get("focal_weight") if isinstance(given, dict) else None
    return "the loss's default focal_weight" if value is None else str(value)


def sensitivity_section(study: Study, phase: str, key: str, symbol: str, img: Path) -> list[str]:
    """One KD hyper-parameter varied at the others chosen: validation picks, test is shown."""
    what = "Temperature" if symbol == "τ" else "Alpha"
    lines = [f"### Ablation: {what.lower()} sensitivity", ""]
    rows = sorted(study.phase(phase), key=lambda r: r.num(key))
    if not rows:
        return lines + [f"No `{phase}` phase in this sweep.", ""]
    best, top = study.best([phase]), study.top_test(rows)
    fixed = "loss.alpha" if symbol == "τ" else "loss.temperature"
    other = "α" if symbol == "τ" else "τ"
    ref = best or next((r for r in rows if r.ok), rows[0])
    lines += [
        f"{symbol} varied at {other} = {ref.num(fixed):g}, {ref.backbone}, attention {ref.attention}.",
        "",
    ]
    cells = [
        [
            f"{r.num(key):g}",
            r.exp_id,
            fmt(r.val),
            fmt(r.test),
            _failed(r) if not r.ok else "← chosen on validation" if r is best else "",
        ]
        for r in rows
    ]
    lines += table([symbol, "Exp", "Val AUC", "Test AUC", ""], cells, "rlrr") + [""]
    if best is not None:
        line = f"Finding: validation picks {symbol}={best.num(key):g} (validation AUC {fmt(best.val)}{_tied(rows, best)})"
        if top is not None and top is not best:
            line += f"; on test {symbol}={top.num(key):g} scores highest ({fmt(top.test)}), but test does not choose"
        lines += [line + ".", ""]
    done = [r for r in rows if r.ok]
    if len(done) >= 2:
        ds = study.sweep.dataset
        rel = sensitivity_plot(
            [r.num(key) for r in done],
            [r.val for r in done],
            [r.test for r in done],
            best.num(key) if best is not None else None,
            symbol,
            f"{ds}: {what.lower()} sensitivity",
            img / f"{ds}_xlite_{'tau' if symbol == 'τ' else 'alpha'}.png",
        )
        lines += [f"![{what.lower()} sensitivity]({rel})", ""]
    return lines
