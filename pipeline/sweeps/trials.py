"""What runs inside a trial's worker: one teacher or one student as a plain function, called
by Ray Tune (pipeline.sweeps.tune_runner hands Tune `any_trial`, `teacher_trial` or
`student_trial`). The MLflow runs are written by the trial itself, through
pipeline.training.run / pipeline.tracking; the trial reports its epochs and its outcome to
Tune, and an error of its own as its result (not retried, unlike a dead worker).
"""

from __future__ import annotations

import os

from ray import tune

EARLY_STOP = "stopped before finishing (early stopping by the scheduler)"
INTERRUPTED = "stopped before finishing (the sweep was interrupted)"


def _threads(cpu: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpu)))  # trials side by side must not oversubscribe cores


def _quiet(_: str) -> None:
    pass


class _Stopped(KeyboardInterrupt):
    """Tune stopped this trial: its scheduler (ASHA), or the driver's interrupt. Its open run
    ends KILLED with the reason (EARLY_STOP or INTERRUPTED)."""


def _reporter(stage: str, metric: str, asha: bool = False):
    """Each epoch to Tune. Tune ends a trial it stops through SystemExit in `tune.report`; only a
    trial under ASHA (`asha`: its config says so) can have been stopped by a scheduler."""

    def on_epoch(role: str, epoch: int, record: dict) -> None:
        if role == stage:
            try:
                tune.report({"stage": stage, "epoch": epoch, "dev_metric": record[metric]})
            except SystemExit:
                raise _Stopped(EARLY_STOP if asha else INTERRUPTED) from None

    return on_epoch


def _where(config: dict):
    """The sweep's parent run and tags, plus where this trial runs: its Ray trial id (how the
    driver finds the run of a worker that died), node and process; the run names the driver
    gave the trial (pipeline.config.names)."""
    from pipeline.sweeps.cluster import node, node_id
    from pipeline.training.run import Tracking

    context = {
        "ray_trial_id": tune.get_context().get_trial_id() or "",
        "node": node(),
        "worker_pid": str(os.getpid()),
        "ray_node_id": node_id(),  # which node to ask about when the worker is lost
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
        cfg,
        data,
        device,
        teacher,
        teacher_run,
        where,
        _quiet,
        _reporter("student", metric, config.get("asha", False)),
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
