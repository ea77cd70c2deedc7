"""Which objective each DSMIL configuration trained with (`mil.objective`: models/model.py,
losses/dsmil_objective.py): the line the MIL and BraTS reports print under their tables.

A run says it by its `mil_objective` tag (pipeline/training/run.py). A DSMIL run logged before
the option existed has no tag and could only train kdsweep's default, so a run whose params name
a DSMIL model (`<stage>.mil.name: dsmil`) without the tag is `mean_ce`; the MIL study passes
that default for every run (all its models are DSMIL), the BraTS study none (its 3-D models have
no such objective).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from reports.groups import Folds

DESCRIPTIONS = {
    "mean_ce": "mean of max and bag scores under the run's label loss (kdsweep's default, `mean_ce`)",
    "dsmil": "DSMIL paper: 0.5 BCE(max) + 0.5 BCE(bag), predicted from the bag score (`dsmil`)",
}


def run_objective(run: pd.Series, default: str | None = None) -> str | None:
    """The objective one run trained with; `default` for a run that records neither tag nor param."""
    tag = run.get("tags.mil_objective")
    if isinstance(tag, str) and tag:
        return tag
    stage = run.get("tags.stage")
    name = run.get(f"params.{stage if stage in ('teacher', 'student') else 'student'}.mil.name")
    return "mean_ce" if name == "dsmil" else default


def objective_line(models: Sequence[tuple[str, Folds]], default: str | None = None) -> list[str]:
    """One sentence naming each configuration's objective (from its FINISHED runs), grouped by
    objective in the order first met; nothing when no run has one."""
    by: dict[str, list[str]] = {}
    for title, m in models:
        got = [run_objective(r, default) for g in m.groups if g.ok for _, r in g.runs.iterrows()]
        for o in dict.fromkeys(x for x in got if x is not None):
            by.setdefault(o, []).append(title)
    if not by:
        return []
    parts = [f"{', '.join(titles)}: {DESCRIPTIONS.get(o, f'`{o}`')}" for o, titles in by.items()]
    return ["DSMIL objective: " + "; ".join(parts) + ".", ""]
