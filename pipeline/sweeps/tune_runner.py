"""The driver's side of Ray Tune: the Tuner, its callbacks, and one row per trial.

Ray starts on this machine by default; RAY_ADDRESS joins an existing cluster (the code and the
environment variables kdsweep reads travel with the job's runtime_env). Each trial asks for
`resources` (fractional GPUs allowed, so small students pack onto one card) and runs one
teacher or one student as a plain function (pipeline.sweeps.trials): the MLflow runs are
written by the trial itself, through pipeline.training.run / pipeline.tracking.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ray import tune

from pipeline.sweeps.cluster import node_lost
from pipeline.sweeps.output import verbose
from pipeline.sweeps.trials import EARLY_STOP, any_trial, student_trial, teacher_trial

__all__ = ["EARLY_STOP", "any_trial", "make_tuner", "row", "run_trials", "start", "worker_death"]

# Tune's CSV/JSON loggers are off (pipeline.sweeps: MLflow records every run), so the result grid
# it builds at the end finds no result.json and warns once per trial; the results it hands back
# come from the trials themselves.
logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def start() -> None:
    """Ray on this machine, or the cluster at RAY_ADDRESS (see pipeline.sweeps.cluster)."""
    from pipeline.sweeps.cluster import connect

    connect()


def worker_death(text: str | None) -> str:
    """One line from Ray's error text for a trial whose worker (or node) died."""
    lines = [" ".join(x.split()) for x in (text or "").splitlines() if x.strip()]
    lines = [x for x in lines if not x.startswith(("Failure #", "Traceback", "File ", "^"))]
    keys = ("died", "killed", "exit", "SIG", "node")
    picked = [x for x in lines if any(k in x for k in keys)][:2] or lines[-1:]
    # Ray appends a paragraph of generic advice ("Some common causes include: ..."): drop it
    return " ".join(picked).split(" Some common causes")[0][:400] or "unknown cause"


class Progress(tune.Callback):
    """The live view: one line per trial event (trial, status, stage, epoch, dev metric). When a
    trial's worker dies, its open MLflow run is ended FAILED with the cause, before any retry."""

    def __init__(self, experiment: str, tags: Mapping[str, str]) -> None:
        self.experiment, self.tags = experiment, dict(tags)

    def _label(self, trial) -> str:
        cfg = trial.config.get("trial", trial.config)
        return cfg.get("label") or " ".join(f"{k}={v}" for k, v in cfg.get("point", {}).items())

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        print(f"[{trial.trial_id}] RUNNING     {self._label(trial)}", flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if "epoch" in result:
            dev = result.get("dev_metric", float("nan"))
            print(
                f"[{trial.trial_id}] {result.get('stage', ''):7s} epoch {result['epoch']:3d}  dev {dev:.4f}  "
                f"{self._label(trial)}",
                flush=True,
            )

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        print(f"[{trial.trial_id}] TERMINATED  {self._label(trial)}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._dead(trial, retried=False)
        print(f"[{trial.trial_id}] ERROR       {self._label(trial)} (reason in the summary)", flush=True)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        cause = self._dead(trial, retried=True)
        print(f"[{trial.trial_id}] RETRY       {self._label(trial)} ({cause})", flush=True)

    def _dead(self, trial, retried: bool) -> str:
        from pipeline import tracking

        error_file = trial.error_file
        text = (
            Path(error_file).read_text(errors="replace") if error_file and Path(error_file).is_file() else ""
        )
        tags = {**self.tags, "ray_trial_id": trial.trial_id}
        nodes = {
            r.data.tags.get("ray_node_id", "") for r in tracking.search(self.experiment, tags, "RUNNING")
        }
        lost = next((n for n in sorted(nodes) if n and node_lost(n)), None)
        what = f"node died: node {lost[:8]} is gone; " if lost else "worker died: "
        cause = what + worker_death(text.split("Failure #")[-1])
        reason = cause + (" (the trial was retried)" if retried else "")
        tracking.kill_stale(self.experiment, tags, reason, status="FAILED")
        return cause


def _space(space: Mapping[str, Any]) -> dict:
    out = {}
    for key, spec in space.items():
        if isinstance(spec, tuple | list):
            out[key] = tune.choice(list(spec))
        elif spec.get("int"):
            out[key] = tune.randint(int(spec["low"]), int(spec["high"]) + 1)
        elif spec.get("log"):
            out[key] = tune.loguniform(float(spec["low"]), float(spec["high"]))
        else:
            out[key] = tune.uniform(float(spec["low"]), float(spec["high"]))
    return out


def run_trials(
    kind: str,
    configs: Sequence[dict],
    *,
    cpu: float,
    gpu: float,
    max_concurrent: int,
    retries: int,
    name: str,
    columns: Sequence[str],
    experiment: str,
    tags: Mapping[str, str],
    metric: str | None = None,
    mode: str = "max",
    asha: bool = False,
    optuna: dict | None = None,
) -> list[dict]:
    """Run `configs` (one trial each) through tune.Tuner; for `optuna`, a searcher suggests
    `optuna["num_samples"]` points of `optuna["space"]`, each repeated over its seeds. (A plain
    grid's teachers and students run in the study's one run instead: pipeline.sweeps.session.)
    `experiment`/`tags`: the MLflow experiment and the sweep's tags, to end the run of a trial
    whose worker died. `retries`: how often a trial whose worker or node died is run again.
    Returns one row per trial: its config, last result, trial id and error (its own error, or
    the worker's death)."""
    start()
    function = {"teacher": teacher_trial, "student": student_trial}[kind]
    trainable = tune.with_resources(function, {"cpu": cpu, "gpu": gpu})
    common = {"cpu": cpu}
    search_alg, num_samples = None, 1
    if optuna is not None:
        from ray.tune.search import ConcurrencyLimiter, Repeater
        from ray.tune.search.optuna import OptunaSearch

        param_space = {**common, **optuna["fixed"], "point": _space(optuna["space"])}
        searcher = OptunaSearch(metric="dev_metric", mode=mode, seed=optuna["seed"])
        search_alg = Repeater(searcher, repeat=len(optuna["fixed"]["seeds"]))
        if max_concurrent:
            search_alg = ConcurrencyLimiter(search_alg, max_concurrent=max_concurrent)
        num_samples = optuna["num_samples"] * len(optuna["fixed"]["seeds"])
    else:
        param_space = {**common, "trial": tune.grid_search(list(configs))}
    tuner = make_tuner(
        trainable,
        param_space,
        search_alg,
        num_samples,
        max_concurrent=max_concurrent if optuna is None else 0,
        retries=retries,
        name=name,
        columns=None if optuna is None else columns,
        callbacks=[Progress(experiment, tags)],
        metric="dev_metric" if (metric and (asha or optuna)) else None,
        mode=mode if (asha or optuna) else None,
        asha=asha,
    )
    return [row(r.config or {}, r.metrics, r.error) for r in tuner.fit()]


def row(config: Mapping[str, Any], metrics: Mapping[str, Any] | None, died: object) -> dict:
    """One trial's outcome: its config, last result, trial id and error (its own error, or
    the death of its worker when `died` holds Ray's error and retries, if any, ran out)."""
    cfg = dict(config.get("trial", config))
    metrics = dict(metrics or {})
    error = "worker died: " + worker_death(str(died)) if died else metrics.get("error")
    return {"config": cfg, "metrics": metrics, "error": error, "trial_id": metrics.get("trial_id")}


def make_tuner(
    trainable: Any,
    param_space: dict,
    search_alg: Any,
    num_samples: int,
    *,
    max_concurrent: int,
    retries: int,
    name: str,
    columns: Sequence[str] | None,
    callbacks: Sequence[Any],
    metric: str | None = None,
    mode: str | None = None,
    asha: bool = False,
    stop: Any = None,
) -> tune.Tuner:
    """The Tuner every kdsweep run uses: actors reused, trial folders named by trial id, Tune's
    own loggers and status table off unless --verbose; `columns` None: the trial's label."""
    scheduler = None
    if asha:
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="training_iteration", grace_period=2, reduction_factor=2)
    # Tune's status table only with --verbose (pipeline.sweeps.output): Progress says the same
    reporter = None
    if verbose():
        reporter = tune.CLIReporter(
            metric_columns={"stage": "stage", "epoch": "epoch", "dev_metric": "dev metric"},
            parameter_columns={"trial/label": "config"} if columns is None else list(columns),
            max_report_frequency=60,
            max_column_length=60,
        )
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=mode,
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=num_samples,
            # Tune wraps a searcher of ours (teachers first) in its ConcurrencyLimiter for this
            max_concurrent_trials=max_concurrent or None,
            reuse_actors=True,
            trial_dirname_creator=lambda trial: (
                trial.trial_id
            ),  # a worker keeps torch, the data and the tokenizers loaded
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(PROJECT_ROOT / "data" / "ray_results"),
            progress_reporter=reporter,
            failure_config=tune.FailureConfig(max_failures=retries),
            verbose=1 if reporter is not None else 0,
            callbacks=list(callbacks),
            stop=stop,
        ),
    )
