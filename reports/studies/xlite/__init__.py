"""docs/xlite_experiments.md and docs/xlite_results.csv: the X-Lite study log (seed 004) filled in
from the run database, one sweep per dataset (the latest, or the one --sweep-id names).

Sections as in the seed: the results.csv template, baseline students and the backbone decision,
the distillation table (with the loss terms of the best distilled run), does KD help (against its
α = 0 control, and against the baseline), τ and α sensitivity, the final model per disease, error
analysis, cross-validation, teacher against student, failed trials, summary and recommendation.
Every choice shown is the one made on validation macro AUC; test numbers are reported beside it
and never choose. Its runs are not in docs/results.csv, whose two-backbone columns do not
describe them.
"""

from __future__ import annotations

from reports.csvs import xlite_csv
from reports.phased import Study, load
from reports.query import Sweep
from reports.registry import Context, Document, register
from reports.studies.xlite.final import cv_section, failed, final_section, teacher_section
from reports.studies.xlite.kd_help import control_diff, kd_diff, kd_help_section
from reports.studies.xlite.phases import baseline_section, kd_section, sensitivity_section
from reports.studies.xlite.summary import summary_section

SHOWN_CSV_ROWS = 3


def csv_section(csv_lines: list[str]) -> list[str]:
    """The first rows of xlite_results.csv, so the document shows what the CSV holds."""
    return [
        "### Results CSV",
        "",
        "[xlite_results.csv](xlite_results.csv) holds one row per phase, experiment and fold in the "
        "seed's results.csv columns (what each column holds: `reports/xlite_csv.py`). Its first rows:",
        "",
        "```csv",
        *csv_lines[: 1 + SHOWN_CSV_ROWS],
        "```",
        "",
    ]


def document(studies: list[Study], csv_text: str, ctx: Context) -> list[str]:
    """The seed's sections per dataset, each choice on validation."""
    lines = [
        "# X-Lite training experiments",
        "",
        "The X-Lite chest X-ray study (seed 004) from the latest X-Lite sweep per dataset. Every choice "
        "below is made on the validation macro AUC of the restored (best validation) checkpoint; test "
        "numbers are shown beside it and never choose. AUC: macro over the labels with both classes "
        "present. Several seeds: mean over seeds.",
        "",
    ]
    csv_lines = csv_text.splitlines()
    start = 1
    for study in studies:
        s = study.sweep
        seeds = ", ".join(str(x) for x in s.seeds) or "?"
        lines += [
            f"## {s.dataset}",
            "",
            f"Sweep run `{s.run_id}` ({s.start_time}); task(s): {', '.join(f'`{t}`' for t in study.tasks) or '?'}; "
            f"seeds: {seeds}.",
            "",
        ]
        lines += csv_section([csv_lines[0], *csv_lines[start : start + len(study.rows)]])
        start += len(study.rows)
        lines += baseline_section(study)
        lines += kd_section(study, ctx.img)
        lines += final_section(study, ctx.img)
        three, control = kd_diff(study), control_diff(study)
        lines += kd_help_section(three, control)
        lines += sensitivity_section(study, "sensitivity_tau", "loss.temperature", "τ", ctx.img)
        lines += sensitivity_section(study, "sensitivity_alpha", "loss.alpha", "α", ctx.img)
        lines += (
            cv_section(study)
            + teacher_section(study)
            + failed(study)
            + summary_section(study, three, control)
        )
    return lines


@register("xlite", order=50, in_results_csv=False, per_dataset=True)
def report(sweeps: list[Sweep], ctx: Context) -> list[Document]:
    """The X-Lite document and its CSV (one sweep per dataset)."""
    studies = [load(s) for s in sweeps]
    text = xlite_csv(studies)
    return [
        Document("xlite_experiments.md", sweeps, document(studies, text, ctx)),
        Document(
            "xlite_results.csv",
            sweeps,
            csv=text,
            about="one row per X-Lite phase, experiment and fold, in the seed's results.csv columns",
            instead_of="X-Lite",
        ),
    ]
