"""docs/mil_loss_analysis.md: seed 002's "Loss Function Analysis for Dual-Stream MIL", measured,
one sweep per dataset (the latest, or the one --sweep-id names).

The seed's structure (executive summary, context, one section per option with its verdict, final
decision) filled in from the run database: the stability rule in numbers (`data`), each option's
per-fold evidence, the choice on validation AUC among the stable options, paired t-intervals over
folds, a CV summary from metrics.json, per-epoch AUC and ROC plots, failures (`verdicts`,
`decision`, `context`). Its runs are rows of docs/results.csv.
"""

from __future__ import annotations

from reports.query import Sweep
from reports.registry import Context, Document, register
from reports.studies.mil.context import context_section, failed
from reports.studies.mil.data import OPTIONS, TITLES, MilStudy, load
from reports.studies.mil.decision import decision_section
from reports.studies.mil.verdicts import option_section, rule_section, summary_section


def document(studies: list[MilStudy], ctx: Context) -> list[str]:
    """The seed's sections per dataset: summary, rule, context, each option, decision, failures."""
    lines = [
        "# Loss Function Analysis for Dual-Stream MIL",
        "",
        "Seed 002's loss choice for the dual-stream MIL model (patient bags of slices), measured: every "
        "configuration trained with patient-level cross-validation, from the latest MIL sweep per dataset. "
        "Choices are made on validation AUC (the restored best-epoch checkpoint on the held-out fold), never on "
        "test; test numbers are shown beside them. ± is the sample std (n − 1) over folds.",
        "",
    ]
    for ms in studies:
        s = ms.sweep
        lines += [
            f"## {s.dataset}",
            "",
            f"Sweep run `{s.run_id}` ({s.start_time}); task `{ms.task}`; seeds: {', '.join(map(str, s.seeds)) or '?'}.",
            "",
        ]
        lines += summary_section(ms) + rule_section(ms) + context_section(ms)
        for i, phase in enumerate(OPTIONS, 1):  # the seed's options in its order, run or not
            o = ms.option(phase)
            if o is not None:
                lines += option_section(ms, o)
            else:
                lines += [
                    f"### Option {i}: {TITLES[phase]} — not run",
                    "",
                    f"No `{phase}` phase in this sweep.",
                    "",
                ]
        for o in ms.options:
            if o.phase not in OPTIONS:
                lines += option_section(ms, o)
        lines += decision_section(ms, ctx.img) + failed(ms)
    return lines


@register("mil", order=60, per_dataset=True)
def report(sweeps: list[Sweep], ctx: Context) -> list[Document]:
    """One document for the MIL sweeps (one per dataset)."""
    return [Document("mil_loss_analysis.md", sweeps, document([load(s) for s in sweeps], ctx))]
