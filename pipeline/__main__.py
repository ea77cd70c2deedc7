"""kdsweep command line.

    python -m pipeline run <experiment.yaml|name> [key=value ...] [--retrain-teacher] [--no-track]
    python -m pipeline sweep <study.yaml|name> [key=value ...] [--dataset D --profile P --seeds N]
                                             [--verbose]
    python -m pipeline config <experiment.yaml|name> [key=value ...]     # resolved config + hash
    python -m pipeline links                  # each experiment's runs page in the MLflow UI
    python -m pipeline check-store            # can the MLflow store be reached and written?

`run` (unless --no-track) and `sweep` check the store first (pipeline.tracking.reach): a tracking
server that is down or a store folder that cannot be written is one line within seconds.

User errors print one line (``error: ...``) and exit 2; a failed run exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import KdsweepError

if TYPE_CHECKING:
    from rich.console import Console

DOCS = Path(__file__).resolve().parents[1] / "docs"
PIPED_WIDTH = 160  # tables in logs and CI: wide enough not to fold a configuration's label


def _console() -> Console:
    """rich's console for stdout: tables as wide as the terminal, or PIPED_WIDTH when stdout is
    not one (rich would assume 80 columns). Its lines go out with soft_wrap (see `_say`)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def _say(console: Console) -> Callable[[str], None]:
    """Print one line as one line: rich otherwise breaks a line at the console's width, which
    splits paths and URIs in logs (a terminal folds long lines itself). Not for tables: they
    need the width."""
    return lambda text: console.print(text, soft_wrap=True)


def _check_store() -> None:
    """Before anything else, the store this command writes to: a server that is down or a
    folder that cannot be written is one line in seconds, not MLflow's minutes of retries."""
    from pipeline import tracking

    if tracking.enabled():  # --no-track (KDSWEEP_TRACKING=off) writes nothing: nothing to check
        tracking.check_store()


def _run(args: argparse.Namespace) -> int:
    if args.no_track:
        os.environ["KDSWEEP_TRACKING"] = "off"
    _check_store()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from pipeline import tracking
    from pipeline.config.identity import experiment_name
    from pipeline.config.loader import load_experiment

    cfg = load_experiment(args.experiment, args.overrides)
    # only a valid config pays for torch and the training stack (~10 s on 2 cores): a typo is
    # reported in about a second
    from pipeline.training.run import run_experiment

    console = _console()
    say = _say(console)
    say(
        f"[bold]kdsweep run[/] {cfg.name}: dataset {cfg.dataset.name}, profile {cfg.profile}, "
        f"loss {cfg.loss.name} (alpha {cfg.loss.alpha}, T {cfg.loss.temperature}), seed {cfg.seed}"
    )
    say(f"MLflow: {tracking.display_uri() if tracking.enabled() else 'off (--no-track): nothing recorded'}")
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    bars: dict[str, int] = {}

    def on_epoch(role: str, epoch: int, record: dict) -> None:
        total = cfg.train.teacher_epochs if role == "teacher" else cfg.train.student_epochs
        if role not in bars:
            bars[role] = progress.add_task(f"{role:7s} epochs", total=total, info="")
        info = f"loss {record['train/loss']:.3f}  dev avg F1 {record['dev/avg_f1']:.3f}"
        progress.update(bars[role], completed=epoch, info=info)

    with progress:
        result = run_experiment(
            cfg, retrain_teacher=args.retrain_teacher, say=_say(progress.console), on_epoch=on_epoch
        )
    for bar in bars.values():  # early stopping: show the bar as done
        progress.update(bar, total=progress.tasks[bar].completed)
    table = Table(title="teacher vs student (test split)")
    table.add_column("metric")
    table.add_column("teacher", justify="right")
    table.add_column("student", justify="right")
    keys = [f"test/{t}/{m}" for t in cfg.dataset.tasks for m in ("acc", "f1", "auc")]
    for key in [*keys, "test/avg_f1", "latency_ms", "latency_p90_ms", "size_mb", "params"]:
        fmt = (lambda v: f"{v:,.0f}") if key == "params" else (lambda v: f"{v:.4f}")
        t, s = result.teacher.get(key), result.student.get(key)
        table.add_row(key, fmt(t) if t is not None else "-", fmt(s) if s is not None else "-")
    console.print(table)
    if not tracking.enabled():
        say("tracking was off (--no-track): nothing was recorded")
        return 0
    reused = " (reused)" if result.teacher_reused else ""
    say(f"teacher run {result.teacher_run_id}{reused}   student run {result.student_run_id}")
    say(tracking.open_hint(experiment_name(cfg)))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    _check_store()
    from rich.table import Table

    from pipeline import tracking
    from pipeline.sweeps.output import VERBOSE
    from pipeline.sweeps.sweep import run_sweep

    if args.verbose:  # read where Ray starts and each batch runs (pipeline.sweeps.output)
        os.environ[VERBOSE] = "1"
    console = _console()
    say = _say(console)
    extra = [
        *([f"dataset={args.dataset}"] if args.dataset else []),
        *([f"profile={args.profile}"] if args.profile else []),
        *args.overrides,
    ]
    say(f"[bold]kdsweep sweep[/] {args.study} {' '.join(extra)}   MLflow: {tracking.display_uri()}")
    result = run_sweep(args.study, extra, args.seeds, say=say, release_ray=True)  # one sweep a command
    order = "in the plan's order" if result.phases else f"sorted by {result.metric}"
    table = Table(title=f"sweep summary, {order} (dev; test shown, never used to choose)")
    for col in ("#", "configuration", "status", result.metric, "test avg F1", "run id / error"):
        table.add_column(col, overflow="fold")
    for i, r in enumerate(result.rows, 1):
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        table.add_row(str(i), r.label, r.status, fmt(r.dev), fmt(r.test_avg_f1), r.run_id or (r.error or ""))
    console.print(table)
    for p in result.phases:
        if p["chosen"]:
            say(
                f"phase {p['name']}: started from {p['chosen']['exp_id']} "
                f"(best mean {result.metric} {p['chosen']['dev']:.4f} in {', '.join(p['best_of'])})"
            )
    say(
        f"parent run {result.parent_run_id} in MLflow experiment {result.experiment}; "
        f"{result.teachers_trained} teacher(s) trained"
        + (f", {result.teachers_failed} teacher(s) FAILED" if result.teachers_failed else "")
    )
    say(tracking.open_hint(result.experiment))  # grouped under the parent run
    if not args.no_report:  # each sweep ends by regenerating the comparison documents
        from reports.__main__ import build

        written = build(args.docs, log_figures=True)  # the sweep's figures travel with its parent run
        say(f"regenerated {len(written)} report file(s) in {args.docs} (start at {args.docs / 'index.md'})")
    if result.best_yaml:  # an optuna study: its best configuration, chosen on dev
        name, parent = result.best_yaml, result.parent_run_id
        if args.no_report:
            say(
                f"best configuration (chosen on dev): artifact {name} of parent run {parent}; "
                f"`make report` writes it to docs/{name}, then: python -m pipeline run docs/{name}"
            )
        else:
            path = args.docs / name
            say(
                f"best configuration (chosen on dev): {path} (also artifact {name} of parent run "
                f"{parent}); rerun it: python -m pipeline run {path}"
            )
    return 1 if any(r.status == "FAILED" for r in result.rows) and not args.allow_failures else 0


def _links(args: argparse.Namespace) -> int:
    """`make ui` prints these before the server starts: each experiment's runs page."""
    from pipeline import tracking

    found = tracking.experiment_links()
    if not found:
        print(f"no kdsweep experiment in {tracking.display_uri()} yet: run `make demo` or a sweep")
    for name, link in found:
        print(f"{name}: {link}")
    return 0


def _check(args: argparse.Namespace) -> int:
    """What `make run` and `make sweep-*` ask before generating data: can the store be written?"""
    from pipeline import tracking

    tracking.check_store()
    print(f"MLflow store ok: {tracking.display_uri()}")
    return 0


def _config(args: argparse.Namespace) -> int:
    from pipeline.config.loader import config_hash, dump_yaml, load_experiment

    cfg = load_experiment(args.experiment, args.overrides)
    print(dump_yaml(cfg), end="")
    print(f"# config_hash: {config_hash(cfg)}")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line: options and sub-commands; every key=value is an override."""
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="kdsweep: multimodal KD sweeps")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train a teacher (or reuse it), distil a student, evaluate, track")
    r.add_argument("experiment", help="experiment YAML file, or a name under sweeps/experiments")
    r.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    r.add_argument(
        "--retrain-teacher", action="store_true", help="train the teacher even if a FINISHED one exists"
    )
    r.add_argument(
        "--no-track",
        action="store_true",
        help="record nothing in MLflow (and reuse no teacher): a scratch run",
    )
    r.set_defaults(func=_run)
    w = sub.add_parser("sweep", help="run a study (sweeps/<study>.yaml) through Ray Tune")
    w.add_argument("study", help="a study YAML file, or a name under sweeps/ (loss, fusion, kd, backbone)")
    w.add_argument("overrides", nargs="*", help="key.sub=value overrides applied to every trial")
    w.add_argument("--dataset", help="dataset name (sweeps/datasets)")
    w.add_argument("--profile", help="model profile (sweeps/profiles)")
    w.add_argument("--seeds", type=int, help="repeat every configuration over seeds 0..N-1")
    w.add_argument("--allow-failures", action="store_true", help="exit 0 even when some trials failed")
    w.add_argument("--no-report", action="store_true", help="do not regenerate the documents at the end")
    w.add_argument("--docs", type=Path, default=DOCS, help="where the documents go (default: docs/)")
    w.add_argument(
        "--verbose",
        action="store_true",
        help="also show Ray's and Ray Tune's own output: status table, trials' stdout, INFO logs",
    )
    w.set_defaults(func=_sweep)
    c = sub.add_parser("config", help="print the resolved config and its hash")
    c.add_argument("experiment")
    c.add_argument("overrides", nargs="*")
    c.set_defaults(func=_config)
    ck = sub.add_parser(
        "check-store", help="can the MLflow store be reached and written? (run and sweep ask first)"
    )
    ck.set_defaults(func=_check)
    ln = sub.add_parser("links", help="the MLflow UI link to each experiment's runs (what `make ui` prints)")
    ln.set_defaults(func=_links)
    # key=value overrides may come before, between or after options (make passes options first)
    is_override = ["=" in a and not a.startswith("-") for a in argv]
    args = parser.parse_args([a for a, o in zip(argv, is_override, strict=True) if not o])
    args.overrides = [a for a, o in zip(argv, is_override, strict=True) if o]
    return args


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args)
    except KdsweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a failed run: already marked FAILED in MLflow
        print(f"run failed: {type(e).__name__}: {e}", file=sys.stderr)
        if os.environ.get("KDSWEEP_DEBUG"):
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
