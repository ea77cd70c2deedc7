"""The only module that talks to Ray Tune.

Ray starts on this machine by default; RAY_ADDRESS joins an existing cluster (the code and the
environment variables kdsweep reads travel with the job's runtime_env). Each trial asks for
`resources` (fractional GPUs allowed, so small students pack onto one card) and runs one
teacher or one student as a plain function: the MLflow runs are written by the trial itself,
through pipeline.training.run / pipeline.tracking.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ray import tune

from pipeline.sweeps.output import verbose

# Tune's CSV/JSON loggers are off (pipeline.sweeps: MLflow records every run), so the result grid
# it builds at the end finds no result.json and warns once per trial; the results it hands back
# come from the trials themselves.
logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EARLY_STOP = "stopped before finishing (early stopping by the scheduler)"


def start() -> None:
    """Ray on this machine, or the cluster at RAY_ADDRESS (see pipeline.sweeps.cluster)."""
    from pipeline.sweeps.cluster import connect

    connect()


def _threads(cpu: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpu)))  # trials side by side must not oversubscribe cores


def _quiet(_: str) -> None:
    pass


class _Stopped(KeyboardInterrupt):
    """The scheduler (ASHA) stopped this trial: its open run ends KILLED with EARLY_STOP."""


def _reporter(stage: str, metric: str):
    def on_epoch(role: str, epoch: int, record: dict) -> None:
        if role == stage:
            try:
                tune.report({"stage": stage, "epoch": epoch, "dev_metric": record[metric]})
            except SystemExit:  # how Ray Tune ends a trial its scheduler stopped
                raise _Stopped(EARLY_STOP) from None

    return on_epoch


def _where(config: dict):
    """The sweep's parent run and tags, plus where this trial runs: its Ray trial id (how the
    driver finds the run of a worker that died), node and process; the run names the driver
    gave the trial (pipeline.config.names)."""
    from pipeline.sweeps.cluster import node
    from pipeline.training.run import Tracking

    context = {
        "ray_trial_id": tune.get_context().get_trial_id() or "",
        "node": node(),
        "worker_pid": str(os.getpid()),
    }
    names = {k: config.get(k, "") for k in ("name", "teacher_name")}
    return Tracking(config["parent"], {**config["tags"], **context}, **names)


def _guarded(stage: str, body, config: dict) -> None:
    """Run a trial body. Its own errors (bad data, a model that fails to build, NaN loss) are
    final: reported as the trial's result, so that Ray's retries (FailureConfig) only repeat
    trials whose worker or node died. The run itself is already FAILED with its reason."""
    from pipeline.sweeps.cluster import credentials

    config = {**config.get("trial", {}), **config}
    os.environ.update(config.get("env", {}))  # this sweep's store, cache and roots (cluster.trial_env)
    os.environ.update(credentials())  # an authenticated tracking server's login, from memory
    _threads(config["cpu"])
    try:
        body(config)
    except _Stopped:
        raise SystemExit(0) from None  # the run is KILLED; hand Ray back its own stop
    except Exception as e:
        error = " ".join(f"{type(e).__name__}: {e}".split())[:2000]
        tune.report({"stage": stage, "error": error, "dev_metric": float("nan")})


def _load(config: dict, overrides: list[str]):
    from pipeline.config.loader import load_experiment
    from pipeline.sweeps.cluster import require_dataset

    cfg = load_experiment(config["experiment"], overrides)
    require_dataset(cfg.dataset.name, cfg.dataset.root)  # this node may lack it
    return cfg


def _teacher(config: dict) -> None:
    from pipeline.training.run import ensure_teacher, prepare

    cfg = _load(config, list(config["overrides"]))
    data, device = prepare(cfg, _quiet)
    _, run_id, reused, _ = ensure_teacher(
        cfg, data, device, False, _where(config), _quiet, _reporter("teacher", f"dev/{cfg.train.monitor}")
    )
    tune.report({"stage": "teacher", "run_id": run_id, "reused": reused})


def _student(config: dict) -> None:
    from pipeline import tracking
    from pipeline.config.loader import config_hash
    from pipeline.training.run import (
        ensure_teacher,
        experiment_name,
        needs_teacher,
        prepare,
        run_student,
        teacher_hash,
    )

    overrides = list(config["overrides"])
    if "point" in config:  # suggested by a searcher (optuna): the point and the seed index
        from pipeline.config.names import teacher_trial_name, trial_name
        from pipeline.config.study import trial_overrides

        seeds = config["seeds"]
        seed = seeds[config.get("__trial_index__", 0) % len(seeds)]
        overrides = list(trial_overrides(config["fixed"], config["extra"], config["point"], seed))
    cfg = _load(config, overrides)
    if "point" in config:  # the searcher's point is known only here, in the trial: so its names
        point, th = config["point"], teacher_hash(cfg)
        named = {"name": trial_name(point, seed), "teacher_name": teacher_trial_name(point, seed, None, th)}
        config = {**config, **named}
    failed = config.get("failed_teachers", {}).get(teacher_hash(cfg)) if needs_teacher(cfg) else None
    if failed:  # never train a failed teacher again inside a student trial
        tune.report({"stage": "student", "error": f"teacher failed: {failed}", "dev_metric": float("nan")})
        return
    metric, exp = config["metric"], experiment_name(cfg)
    done = tracking.find_finished(exp, {"stage": "student", "config_hash": config_hash(cfg)})
    if done:
        m = tracking.get_run(done).data.metrics
        tune.report(
            {
                "dev_metric": m.get(f"best_{metric}", float("nan")),
                "test_avg_f1": m.get("test/avg_f1"),
                "run_id": done,
                "skipped": True,
            }
        )
        return
    data, device = prepare(cfg, _quiet)
    where = _where(config)
    if needs_teacher(cfg):
        teacher, teacher_run, _, _ = ensure_teacher(cfg, data, device, False, where, _quiet)
    else:  # no teacher trained for a loss that reads none; its id is tagged if the sweep has one
        found = tracking.find_finished(exp, {"stage": "teacher", "teacher_hash": teacher_hash(cfg)})
        teacher, teacher_run = None, found or ""
    run_id, m = run_student(
        cfg, data, device, teacher, teacher_run, where, _quiet, _reporter("student", metric)
    )
    tune.report(
        {
            "stage": "student",
            "dev_metric": m[f"best_{metric}"],
            "test_avg_f1": m["test/avg_f1"],
            "run_id": run_id,
        }
    )


def teacher_trial(config: dict) -> None:
    """Train (or find) the teacher of one teacher configuration."""
    _guarded("teacher", _teacher, config)


def student_trial(config: dict) -> None:
    """Distil one student configuration; a configuration already FINISHED is not run again."""
    _guarded("student", _student, config)


def any_trial(config: dict) -> None:
    """A teacher's or a student's trial, by its config: one trainable for a run of both, so
    that Tune reuses one actor for either (pipeline.sweeps.ordered)."""
    trial = config.get("trial", config)
    (teacher_trial if trial.get("stage") == "teacher" else student_trial)(config)


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
        cause = "worker died: " + worker_death(text.split("Failure #")[-1])
        reason = cause + (" (the trial was retried)" if retried else "")
        tags = {**self.tags, "ray_trial_id": trial.trial_id}
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
    teachers: Sequence[dict] = (),
) -> list[dict]:
    """Run `configs` (one trial each) through tune.Tuner; for `optuna`, a searcher suggests
    `optuna["num_samples"]` points of `optuna["space"]`, each repeated over its seeds. With
    `teachers` (student configs only, no ASHA or Optuna), the teachers' trials run in the same
    Tune run, each before the students that name it (pipeline.sweeps.ordered); their rows come
    back too, with `stage: teacher` in their config.
    `experiment`/`tags`: the MLflow experiment and the sweep's tags, to end the run of a trial
    whose worker died. `retries`: how often a trial whose worker or node died is run again.
    Returns one row per trial: its config, last result, trial id and error (its own error, or
    the worker's death)."""
    start()
    function = {"teacher": teacher_trial, "student": student_trial}[kind]
    trainable = tune.with_resources(any_trial if teachers else function, {"cpu": cpu, "gpu": gpu})
    common = {"cpu": cpu}
    search_alg, num_samples = None, 1
    if teachers:
        from pipeline.sweeps.ordered import Ordered

        assert kind == "student" and not asha and optuna is None, "teachers first: a plain grid only"
        param_space = dict(common)
        search_alg, num_samples = Ordered(teachers, configs), len(teachers) + len(configs)
    elif optuna is not None:
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
    grid = tuner.fit()
    handed = getattr(search_alg, "handed", {})
    # a searcher's trial that failed before it started has no config in the grid: the searcher
    # knows it by the trial's folder (named by its id, trial_dirname_creator)
    return [row(r.config or handed.get(Path(r.path or "").name, {}), r.metrics, r.error) for r in grid]


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
