"""make report: rebuild docs/*.md, docs/results.csv and docs/img/*.png from the MLflow database.

    python -m reports [--sweep-id RUN_ID] [--out docs] [--log-figures] [--read auto|sql|mlflow]

Reads only the run database (through reports.query) and writes nothing to it: the database and
the artifact folder are unchanged, so a copied store (a colleague's mlruns/) can be reported.
Rebuilding from the same database gives byte-identical files. `--log-figures` (what sweeps use at
their end) also logs the figures to each reported sweep's parent run. An X-Lite sweep
(study_kind=xlite, seed 004) adds docs/xlite_experiments.md and docs/xlite_results.csv; a MIL
loss sweep (study_kind=mil, seed 002) adds docs/mil_loss_analysis.md; a BraTS models sweep
(study_kind=brats, sweeps/brats.yaml) adds docs/brats_models.md. `--read` picks how runs
are read: `sql` (MLflow's tables of a sqlite or other SQL store, directly: the fast path),
`mlflow` (the MLflow client, as over a tracking server), `auto` (sql where the store is SQL);
both give the same files.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from pipeline import tracking
from reports import loss_doc, plots
from reports.common import Config, configs, data_warnings, header, incomplete_section
from reports.mil_data import load as mil_load
from reports.mil_doc import document as mil_document
from reports.other_docs import backbone_document, fusion_document, kd_document
from reports.query import Sweep, sweeps
from reports.results_csv import results_csv
from reports.xlite_csv import xlite_csv
from reports.xlite_data import latest, load
from reports.xlite_doc import document as xlite_document


def build(
    out: Path, sweep_id: str | None = None, log_figures: bool = False, read: str = "auto"
) -> list[Path]:
    """Write every document; returns the files written. Nothing is written to the tracking
    store unless `log_figures`: then each sweep's figures are logged to its parent run.
    `read`: the reader of the runs ("auto", "sql", "mlflow"), the same files from each."""
    uri = tracking.display_uri()  # as the user named it: no machine's absolute path in the docs
    found = sweeps(sweep_id, via=read)
    out.mkdir(parents=True, exist_ok=True)
    img = out / "img"
    head = header(uri)
    written: list[Path] = []

    def write(name: str, lines: list[str]) -> None:
        path = out / name
        path.write_text(head + "\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
        written.append(path)

    if not found:
        write(
            "index.md",
            [
                "# kdsweep reports",
                "",
                f"No FINISHED sweep in {uri} yet: nothing to report.",
                "Run a study first, e.g. `make sweep-loss DATASET=synthetic-wound`, then `make report`.",
            ],
        )
        return written
    by_kind: dict[str, list[Sweep]] = {}
    for s in found:
        by_kind.setdefault(s.kind, []).append(s)
    index = [
        "# kdsweep reports",
        "",
        f"Generated from the runs in `{uri}`.",
        "",
        "| Document | Sweep runs (study, dataset, started) |",
        "|---|---|",
    ]

    def add(name: str, sws: list[Sweep]) -> None:
        index.append(
            f"| [{name}]({name}) | "
            + "; ".join(f"`{s.run_id}` ({s.study}, {s.dataset}, {s.start_time})" for s in sws)
            + " |"
        )

    if "loss" in by_kind:
        write(
            "loss_explore.md", loss_doc.document(by_kind["loss"], img) + incomplete_section(by_kind["loss"])
        )
        add("loss_explore.md", by_kind["loss"])
    for s in by_kind.get("fusion", []):
        name = f"{s.dataset}_fusion_hp_summary.md"
        write(name, fusion_document(s, img) + incomplete_section([s]))
        add(name, [s])
    if "kd" in by_kind:
        baselines: dict[str, Config] = {}
        for s in by_kind.get("loss", []):
            base = next((c for c in configs(s) if c.tag("loss") == "none"), None)
            if base is not None:
                baselines[s.dataset] = base
        write(
            "kd_sensitivity.md",
            kd_document(by_kind["kd"], baselines, img) + incomplete_section(by_kind["kd"]),
        )
        add("kd_sensitivity.md", by_kind["kd"])
    if "backbone" in by_kind:
        write(
            "backbones.md",
            backbone_document(by_kind["backbone"], img) + incomplete_section(by_kind["backbone"]),
        )
        add("backbones.md", by_kind["backbone"])
    # X-Lite (seed 004): its own log and CSV in the seed's columns, one sweep per dataset; its
    # runs stay out of results.csv, whose two-backbone columns do not describe them
    xlite = latest(by_kind.get("xlite", []), sweep_id)
    studies = [load(s) for s in xlite]
    xlite_text = xlite_csv(studies) if studies else ""
    if studies:
        write("xlite_experiments.md", xlite_document(studies, xlite_text, img) + incomplete_section(xlite))
        add("xlite_experiments.md", xlite)
    mil = latest(by_kind.get("mil", []), sweep_id)  # seed 002: one MIL loss sweep per dataset
    if mil:
        write("mil_loss_analysis.md", mil_document([mil_load(s) for s in mil], img) + incomplete_section(mil))
        add("mil_loss_analysis.md", mil)
    brats = latest(by_kind.get("brats", []), sweep_id)  # seed 002's models and ensemble, per dataset
    if brats:
        from reports.brats_data import load as brats_load
        from reports.brats_doc import document as brats_document

        write(
            "brats_models.md", brats_document([brats_load(s) for s in brats], img) + incomplete_section(brats)
        )
        add("brats_models.md", brats)
    csv_path = out / "results.csv"
    csv_path.write_text(results_csv([s for s in found if s.kind not in ("xlite", "brats")]), encoding="utf-8")
    written.append(csv_path)
    csvs = "results.csv is"
    index.append(
        f"| [results.csv](results.csv) | every FINISHED student run of the sweeps above{' except X-Lite' if studies else ''} |"
    )
    if studies:
        (out / "xlite_results.csv").write_text(xlite_text, encoding="utf-8")
        written.append(out / "xlite_results.csv")
        index.append(
            "| [xlite_results.csv](xlite_results.csv) | one row per X-Lite phase, experiment and fold, "
            "in the seed's results.csv columns |"
        )
        csvs = "results.csv and xlite_results.csv are"
    index += [
        "",
        f"{csvs} generated by `make report` from `{uri}` too; do not edit {'it' if not studies else 'them'}.",
        "",
    ]
    index += incomplete_section(found)
    write("index.md", index)
    for line in data_warnings(found):
        if line.startswith("- "):  # also said where the command runs, not only in the files
            print(f"warning: runs on different data: {line[2:]}", file=sys.stderr)
    plots.drawn()  # every figure on disk (one may still be in the worker of plots.beside)
    # a figure no document shows any more (e.g. a Pareto plot now left out) is a stale output
    shown = {
        m for p in written if p.suffix == ".md" for m in re.findall(r"\(img/([^)]+\.png)\)", p.read_text())
    }
    for stale in sorted(img.glob("*.png")):
        if stale.name not in shown:
            stale.unlink()
    if log_figures:  # figures travel with the sweep they describe; only on request (read-only otherwise)
        for s in found:
            figs = sorted(img.glob(f"{s.dataset}_{s.kind}*.png"))
            if figs:
                tracking.log_files(s.run_id, figs, "report")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports", description=__doc__.split("\n")[0])
    p.add_argument(
        "--sweep-id", default=None, help="report this sweep (parent run id) for its study and dataset"
    )
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    p.add_argument(
        "--log-figures",
        action="store_true",
        help="also log the figures to each reported sweep's parent run (writes to the store)",
    )
    p.add_argument(
        "--read",
        choices=("auto", "sql", "mlflow"),
        default="auto",
        help="read runs from MLflow's SQL tables directly (sql, fast), through the MLflow client "
        "(mlflow, as a tracking server needs) or sql where the store is SQL (auto)",
    )
    a = p.parse_args(argv)
    with plots.beside():  # figures rendered in a worker process while the documents go on
        written = build(a.out, a.sweep_id or None, log_figures=a.log_figures, read=a.read)
    for path in written:
        print(f"wrote {path}")
    if len(written) == 1:
        print(f"no FINISHED sweep in {tracking.display_uri()}: run a study first (make sweep-loss)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
