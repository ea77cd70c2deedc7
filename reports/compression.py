"""What a student saves against its teacher: parameters per component, the compression ratio,
and test F1 per million parameters. Read from the counts every run logs (`params`, and
`params/<part>` per top-level module of the model: pipeline/training/run.py), means over the
group's runs (one architecture: the same counts on every seed)."""

from __future__ import annotations

import numpy as np

from reports.groups import Group
from reports.markdown import table
from reports.stats import fmt

# the model's top-level modules (models/model.py) in the components a reader compares
PARTS = {
    "Vision": ("vision",),
    "Text": ("text",),
    "Fusion": ("proj_image", "proj_text", "fusion"),
    "Heads": ("heads",),
}


def _parts(g: Group) -> dict[str, float]:
    """Parameters per component (NaN where the runs did not log per-part counts); what no named
    component holds (a 3-D volume encoder, a MIL head) is `Other`."""
    logged = {c[len("metrics.params/") :] for c in g.runs.columns if c.startswith("metrics.params/")}
    if not logged:
        return {k: np.nan for k in [*PARTS, "Other"]}

    def total(names) -> float:  # a module the model lacks (an image-only student's text) counts 0
        return float(sum(v for p in sorted(names) if not np.isnan(v := g.mean(f"params/{p}"))))

    named = {p for ps in PARTS.values() for p in ps}
    return {**{k: total(set(ps) & logged) for k, ps in PARTS.items()}, "Other": total(logged - named)}


def _m(x: float) -> str:
    return fmt(x / 1e6, 3)


def compression_section(teacher: Group | None, rows: list[tuple[str, Group]], title: str) -> list[str]:
    """A table: the teacher (the reference) then each (name, configuration): parameters per
    component and in all (millions), size (MB), compression ratio (teacher parameters / the
    model's), test avg F1 and test avg F1 per million parameters. Nothing without counts."""
    if not rows or all(np.isnan(g.mean("params")) for _, g in rows):
        return []
    ref = teacher.mean("params") if teacher is not None else np.nan
    entries = ([("teacher *", teacher)] if teacher is not None else []) + rows
    parts = {name: _parts(g) for name, g in entries}
    shown = [k for k in [*PARTS, "Other"] if any(parts[n][k] > 0 for n, _ in entries)]
    cells = []
    for name, g in entries:
        total, f1 = g.mean("params"), g.fair.mean("test/avg_f1")
        ratio = ref / total if total > 0 else np.nan
        cells.append(
            [
                name,
                *(_m(parts[name][k]) for k in shown),
                _m(total),
                fmt(g.mean("size_mb"), 2),
                "n/a" if np.isnan(ratio) else f"{ratio:.1f}×",
                fmt(f1),
                fmt(f1 / (total / 1e6), 3) if total > 0 else "n/a",
            ]
        )
    head = ["Model", *(f"{k} (M)" for k in shown), "Params (M)", "Size (MB)", "Compression"]
    head += ["Test avg F1", "Test avg F1 per M params"]
    return [
        title,
        "",
        "Parameters per component (Fusion: the projections into the fusion width and the fusion "
        "module), compression = the teacher's parameters / the model's, and test avg F1 per million "
        "parameters (a ranking by size alone; the F1 column above says what each keeps).",
        "",
        *table(head, cells, "l" + "r" * (len(head) - 1)),
        "",
    ]
