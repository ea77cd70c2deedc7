"""The sweep's last step under `tracking.log_models: chosen`: the student configuration chosen
on dev becomes a registered MLflow model.

A sweep step, not a training one: it rebuilds the chosen run's student through the training
stage (pipeline.training.run) and logs it with pipeline.training.export, so it sits above both
(in pipeline.training.export it made export and run import each other). Torch is imported only
when a model is registered, so the sweep driver starts without it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pipeline import tracking
from pipeline.config.phases import Phase
from pipeline.config.study import StudyConfig
from pipeline.sweeps import summary
from pipeline.sweeps.batch import Row

Say = Callable[[str], None]


def register_chosen(run_id: str, name: str, tags: Mapping[str, str], say: Say = print, how: str = "") -> str:
    """Rebuild the student of a FINISHED run from its config.yaml and checkpoint, log it as an
    MLflow model on that run and register it as `name` with `tags`; returns the version. Its
    description: what the model is (from its config), then `how` it was chosen."""
    from pipeline.config.loader import load_experiment
    from pipeline.training.describe import config_line
    from pipeline.training.export import log_model
    from pipeline.training.run import build_model, prepare

    text = tracking.read_text(run_id, "config.yaml")
    if text is None:
        raise ValueError(f"run {run_id} has no config.yaml: it cannot be rebuilt")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        cfg = load_experiment(str(path))
    data, _ = prepare(cfg, say=lambda _: None)
    student = build_model(cfg.student, data, "student", cfg.seed + 1)
    student.load_state_dict(tracking.load_state_dict(run_id, "student/model.pt"))
    uri = log_model(tracking.RunLog(tracking.client(), run_id), student, data, cfg)
    what = config_line(cfg, "student").replace("student: ", "Student: ", 1)
    version = tracking.register(uri, name, dict(tags), f"{what}.\n\n{how}".strip())
    say(f"registered the chosen student as model {name!r} version {version} (run {run_id})")
    return version


def register_sweep_choice(
    study: StudyConfig, dataset: str, rows: Sequence[Row], plan: Sequence[Phase], parent_id: str, say: Say
) -> None:
    """The student configuration chosen on dev (summary.chosen) becomes a registered MLflow
    model; a failure is said, never raised: the trials are done and recorded."""
    found = summary.chosen(rows, plan, study.metric, study.mode)
    if found is None:
        say("no FINISHED student: no model registered")
        return
    row, rule = found
    tags = {"sweep_run_id": parent_id, "study": study.name, "configuration": row.label, "selection": rule}
    try:
        dev = "-" if row.dev is None else f"{row.dev:.4f}"
        how = (
            f"Chosen on dev, never on test, in study `{study.name}` on `{dataset}`: {rule}. "
            f"This run: `{row.label}`, dev {study.metric} {dev}.\n\n"
            + summary.lead(rows, plan, row, study.metric, study.mode)
        )
        register_chosen(row.run_id, f"{study.name}-{dataset}-student", tags, say, how)
    except Exception as e:  # the trials are done and recorded: say so, do not fail the sweep
        say(f"could not register the chosen student (run {row.run_id}): {type(e).__name__}: {e}")
