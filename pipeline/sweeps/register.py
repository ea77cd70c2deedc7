"""The sweep's last step under `tracking.log_models: chosen`: the student configuration chosen
on dev becomes a registered MLflow model.

A sweep step, not a training one: it rebuilds the chosen run's student through the training
stage (pipeline.training.run) and logs it with pipeline.training.export, so it sits above both
(in pipeline.training.export it made export and run import each other). Torch is imported only
when a model is registered, so the sweep driver starts without it; and the sweep command's
driver, which never imports torch, registers in a child process (`python -m
pipeline.sweeps.register`, the job on its stdin) started with the sweep (`Registrar`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def _job(
    study: StudyConfig, dataset: str, rows: Sequence[Row], plan: Sequence[Phase], parent_id: str
) -> dict | None:
    """What registering the chosen student (summary.chosen) takes: its run, the model's name,
    tags and description; None where no student FINISHED."""
    found = summary.chosen(rows, plan, study.metric, study.mode)
    if found is None:
        return None
    row, rule = found
    dev = "-" if row.dev is None else f"{row.dev:.4f}"
    how = (
        f"Chosen on dev, never on test, in study `{study.name}` on `{dataset}`: {rule}. "
        f"This run: `{row.label}`, dev {study.metric} {dev}.\n\n"
        + summary.lead(rows, plan, row, study.metric, study.mode)
    )
    tags = {"sweep_run_id": parent_id, "study": study.name, "configuration": row.label, "selection": rule}
    return {"run_id": row.run_id, "name": f"{study.name}-{dataset}-student", "tags": tags, "how": how}


def _failed(job: Mapping, why: str) -> str:
    return f"could not register the chosen student (run {job['run_id']}): {why}"


class Registrar:
    """Registers the student configuration chosen on dev as an MLflow model at a sweep's end.

    Where this process has no torch (the sweep command's driver imports none) the rebuild runs
    in a child process, `python -m pipeline.sweeps.register`, started with the sweep (`warm`): at
    the lowest CPU priority it imports torch, the models and MLflow's client while the trials
    run, taking only CPU they leave idle, then waits for its job on stdin. At the end only the
    rebuild is left (~2 s against ~7 s with the imports on 2 cores), beside the parent run's last
    writes and Ray's shutdown. Where torch is already imported (a test, a notebook) it runs in
    this process: a child would import everything again."""

    def __init__(self, warm: bool = True) -> None:
        self._child: subprocess.Popen | None = None
        self._pending: Callable[[], None] | None = None  # the wait for a job handed to the child
        if warm:
            self.warm()

    def __enter__(self) -> Registrar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def warm(self) -> None:
        """Start the child (where it pays: see the class); once."""
        if self._child is not None or "torch" in sys.modules:
            return
        from pipeline.sweeps.cluster import PROJECT_ROOT

        path = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(), "PYTHONPATH": path}
        self._child = subprocess.Popen(
            [sys.executable, "-m", "pipeline.sweeps.register"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,  # credentials stay in the environment: never on a command line
        )

    def start(
        self,
        study: StudyConfig,
        dataset: str,
        rows: Sequence[Row],
        plan: Sequence[Phase],
        parent_id: str,
        say: Say,
    ) -> None:
        """Begin registering the chosen student (summary.chosen): in the child, which `finish`
        waits for and says how it went; here, now, without one. A failure is said, never
        raised: the trials are done and recorded."""
        job = _job(study, dataset, rows, plan, parent_id)
        if job is None:
            say("no FINISHED student: no model registered")
            return
        child, self._child = self._child, None
        if child is None:
            _register(job, say)
            return

        def wait() -> None:
            out, err = child.communicate(json.dumps(job))
            said = [
                line for line in out.splitlines() if line.startswith(("registered ", "could not register "))
            ]
            if said:
                say(said[-1])
            else:
                last = (err.strip().splitlines() or [f"the registering process exited {child.returncode}"])[
                    -1
                ]
                say(_failed(job, last))

        self._pending = wait

    def finish(self) -> None:
        """Wait for the job handed to the child and say how it went; a child that got none
        (nothing to register, or the sweep failed) reads an empty stdin and exits."""
        pending, child, self._pending, self._child = self._pending, self._child, None, None
        if pending is not None:
            pending()
        if child is not None:
            child.communicate("")


def _register(job: Mapping, say: Say) -> None:
    try:
        register_chosen(job["run_id"], job["name"], job["tags"], say, job["how"])
    except Exception as e:
        say(_failed(job, f"{type(e).__name__}: {e}"))


def _child() -> None:
    """The child of `Registrar.warm`: lowest priority, the imports, then its job (or none)."""
    os.nice(19)
    import transformers.models  # noqa: F401  (transformers' lazy modules: ~1 s when first touched)

    import pipeline.data.text  # noqa: F401
    import pipeline.training.describe  # noqa: F401
    import pipeline.training.export  # noqa: F401
    import pipeline.training.run  # noqa: F401

    tracking.client()  # MLflow's client and the store's set-up
    text = sys.stdin.read()
    if text.strip():
        _register(json.loads(text), lambda line: print(line, flush=True))


if __name__ == "__main__":
    _child()
