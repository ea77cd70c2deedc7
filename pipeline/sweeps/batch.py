"""One batch of a sweep's trials through Ray Tune: teachers before the students that read them
(in one Tune run for a plain grid, pipeline.sweeps.ordered; in two under ASHA or Optuna), then a
row per trial (its run, or why it has none). A study runs one batch per phase
(pipeline.sweeps.sweep).

Resume: a trial whose configuration (config hash) already has a FINISHED student run is not
run again; its row points at that run ("FINISHED earlier"). Teachers: one Ray trial per
distinct teacher configuration not yet FINISHED, so a teacher is trained at most once even
when students run side by side. Students of a teacher that failed are not started (FAILED,
"teacher failed: <reason>").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pipeline import tracking
from pipeline.config.identity import needs_teacher, teacher_hash
from pipeline.config.names import teacher_trial_name, trial_name
from pipeline.config.study import StudyConfig, Trial, point_overrides, short
from pipeline.sweeps.cluster import trial_env

Say = Callable[[str], None]


@dataclass
class Row:
    label: str
    status: str  # FINISHED, FINISHED earlier, FAILED, STOPPED early
    dev: float | None = None
    test_avg_f1: float | None = None
    run_id: str | None = None
    error: str | None = None
    phase: str = ""
    exp_id: str = ""
    point: dict = field(default_factory=dict)
    seed: int | None = None
    fold: int | None = None
    defining: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What every batch of one sweep shares."""

    study: StudyConfig
    extra: tuple[str, ...]
    experiment: str
    sweep_hash: str
    parent_id: str
    pin: list[str]  # overrides every trial gets (the dataset root as resolved by the driver)
    session: Any = None  # a plain grid's one Tune run for all its batches (pipeline.sweeps.session)


@dataclass
class Batch:
    rows: list[Row]
    teachers_trained: int = 0
    failed_teachers: dict[str, str] = field(default_factory=dict)


def _key(key: str) -> str:
    """A space key for display: tied teacher/student keys show once, without the role."""
    first = key.split(",")[0].strip()
    return first.split(".", 1)[1] if "," in key and first.startswith(("teacher.", "student.")) else first


def label(trial: Trial) -> str:
    parts = [trial.exp_id] if trial.exp_id else []
    parts += [f"{_key(k)}={short(v)}" for k, v in trial.point.items()]
    parts.append(f"seed={trial.seed}")
    if trial.fold is not None:
        parts.append(f"fold={trial.fold}")
    return " ".join(parts)


def names(trial: Trial) -> dict[str, str]:
    """The run names of a trial's student and of its teacher (pipeline.config.names)."""
    return {
        "name": trial_name(trial.point, trial.seed, trial.exp_id, trial.fold),
        "teacher_name": teacher_trial_name(
            trial.point, trial.cfg.seed_of_teacher, trial.fold, teacher_hash(trial.cfg)
        ),
    }


def _row(trial: Trial, status: str, **kw: Any) -> Row:
    return Row(
        label(trial),
        status,
        phase=trial.phase,
        exp_id=trial.exp_id,
        point=dict(trial.point),
        seed=trial.seed,
        fold=trial.fold,
        defining=list(trial.defining),
        **kw,
    )


def _tags(ctx: Context, trial: Trial) -> dict[str, str]:
    tags = {"study": ctx.study.name, "sweep_hash": ctx.sweep_hash}
    if trial.phase:
        tags.update(phase=trial.phase, exp_id=trial.exp_id)
    if trial.fold is not None:
        tags["fold"] = str(trial.fold)
    return tags


def stopped_early(result: dict) -> bool:
    """Ended by the scheduler: no error, and no final result (run id) reported."""
    return not result["error"] and "run_id" not in result["metrics"]


def resources(ctx: Context) -> dict[str, Any]:
    """What each Tune run of the sweep gets: trial resources, concurrency, retries, and the
    experiment and tags by which a dead worker's run is found."""
    study = ctx.study
    return {
        "cpu": study.resources.cpu,
        "gpu": study.resources.gpu,
        "max_concurrent": study.max_concurrent,
        "retries": study.retries,
        "experiment": ctx.experiment,
        "tags": {"study": study.name, "sweep_hash": ctx.sweep_hash},
    }


def fed(ctx: Context) -> bool:
    """A study whose batches can share one Tune run: a plain grid (ASHA and Optuna rank the
    trials of their run)."""
    return ctx.study.search.algorithm != "optuna" and ctx.study.scheduler != "asha"


def run_batch(ctx: Context, trials: Sequence[Trial], name: str, say: Say = print) -> Batch:
    from pipeline.sweeps import tune_runner

    study, exp = ctx.study, ctx.experiment
    finished = {
        r.data.tags.get("config_hash"): r for r in tracking.search(exp, {"stage": "student"}, "FINISHED")
    }
    optuna = study.search.algorithm == "optuna"
    todo = list(trials) if optuna else [t for t in trials if t.config_hash not in finished]
    if name:
        say(f"phase {name}: {len(trials)} trial(s), {len(trials) - len(todo)} already FINISHED")
    res = resources(ctx)
    common = {"experiment": study.experiment, "parent": ctx.parent_id, "env": trial_env()}
    batch = Batch([])
    # one teacher trial per distinct teacher configuration (the first trial that needs it)
    teachers: dict[str, Trial] = {}
    for t in todo:  # a loss that reads no teacher (none) gets none trained for it
        if needs_teacher(t.cfg):
            teachers.setdefault(teacher_hash(t.cfg), t)
    done = {r.data.tags.get("teacher_hash") for r in tracking.search(exp, {"stage": "teacher"}, "FINISHED")}
    new = {h: t for h, t in teachers.items() if h not in done}
    # Ray Tune's folder per batch: the parent run's id keeps two sweeps of one study apart
    # (two datasets at once, or two users of one checkout) instead of sharing their trial state
    prefix = f"{study.name}-{ctx.parent_id[:8]}" + (f"-{name}" if name else "")
    teacher_confs = [
        {
            **common,
            "stage": "teacher",
            "tags": _tags(ctx, t),
            "label": f"teacher seed={t.cfg.seed_of_teacher}"
            + (f" fold={t.fold}" if t.fold is not None else "")
            + f" hash={h[:8]}",
            "overrides": [*t.overrides, *ctx.pin],
            "teacher_hash": h,
            "teacher_name": names(t)["teacher_name"],
        }
        for h, t in new.items()
    ]
    if new:
        say(f"teachers: training {len(new)} distinct teacher configuration(s)")
    student = {"name": f"{prefix}-students", "metric": "dev_metric", "mode": study.mode}
    student["asha"] = study.scheduler == "asha"
    # A plain grid runs its teachers and students in the study's one Tune run (the session,
    # pipeline.sweeps.ordered); ASHA and Optuna rank every trial of their run, so their teachers
    # run first, in a run of their own.
    together = bool(new) and ctx.session is not None
    if new and not together:
        _teachers(
            batch,
            tune_runner.run_trials("teacher", teacher_confs, name=f"{prefix}-teachers", columns=[], **res),
            say,
        )
    failed = batch.failed_teachers  # known here without `together`; filled by its run otherwise
    runnable = [t for t in todo if not (needs_teacher(t.cfg) and teacher_hash(t.cfg) in failed)]
    common["failed_teachers"] = failed
    if optuna:
        fixed = {
            **common,
            "tags": res["tags"],
            "fixed": list(study.overrides),
            "extra": [*ctx.extra, *ctx.pin],
            "seeds": list(study.seeds),
            "metric": study.metric,
            "asha": student["asha"],
            "overrides": [],
        }
        opt = {"fixed": fixed, "space": study.space, "num_samples": study.search.num_samples}
        opt["seed"] = study.search.seed
        cols = [f"point/{k}" for k in study.space]
        results = tune_runner.run_trials("student", [], columns=cols, optuna=opt, **student, **res)
    else:
        confs = [
            {
                **common,
                "stage": "student",
                "tags": _tags(ctx, t),
                "label": label(t),
                "overrides": [*t.overrides, *ctx.pin],
                "metric": study.metric,
                "asha": student["asha"],  # a stop by Tune is the scheduler's (else an interrupt)
                **names(t),
                "index": i,
                **_waits_for(t, new if together else {}),
            }
            for i, t in enumerate(runnable)
        ]
        if not confs:
            results = []
        elif ctx.session is not None:  # the study's one run (a plain grid: not ASHA, not Optuna)
            results = ctx.session.run(confs, teacher_confs if together else [])
        else:
            results = tune_runner.run_trials("student", confs, columns=[], **student, **res)
        if together:
            _teachers(batch, [r for r in results if r["config"].get("stage") == "teacher"], say)
            results = [r for r in results if r["config"].get("stage") != "teacher"]
    blocked = [t for t in todo if needs_teacher(t.cfg) and teacher_hash(t.cfg) in failed]
    _close_open_runs(ctx, results)
    best = f"best_{study.metric}"
    if not optuna:
        todo_hashes = {t.config_hash for t in todo}
        by_index = {r["config"]["index"]: r for r in results}
        position = {id(t): i for i, t in enumerate(runnable)}
        blocked_ids = {id(t) for t in blocked}
        for t in trials:
            if t.config_hash not in todo_hashes:
                run = finished[t.config_hash]
                m = run.data.metrics
                batch.rows.append(
                    _row(
                        t,
                        "FINISHED earlier",
                        dev=m.get(best),
                        test_avg_f1=m.get("test/avg_f1"),
                        run_id=run.info.run_id,
                    )
                )
            elif id(t) in blocked_ids:
                batch.rows.append(_row(t, "FAILED", error=f"teacher failed: {failed[teacher_hash(t.cfg)]}"))
            else:
                batch.rows.append(_result_row(by_index.get(position[id(t)]), partial(_row, t)))
    else:
        for r in results:
            batch.rows.append(_result_row(r, partial(_suggested_row, r["config"])))
    return batch


def _suggested_row(config: dict, status: str, **kw: Any) -> Row:
    """The row of a trial Optuna suggested: its point, seed (the Repeater's index into the
    study's seeds, as the trial reads it) and defining overrides are known only from its config,
    so that trials.json groups its seeds and names its configuration like a grid's."""
    point, seeds = dict(config.get("point", {})), config.get("seeds") or [None]
    seed = seeds[config.get("__trial_index__", 0) % len(seeds)]
    text = " ".join([*(f"{_key(k)}={short(v)}" for k, v in point.items()), f"seed={seed}"])
    return Row(text, status, point=point, seed=seed, defining=point_overrides(point), **kw)


def _waits_for(trial: Trial, new: dict[str, Trial]) -> dict[str, str]:
    """The teacher a student's trial waits for in a run of both, and whether it reads it
    (pipeline.sweeps.ordered)."""
    from pipeline.sweeps.ordered import AFTER, NEEDS

    digest = teacher_hash(trial.cfg)
    return {AFTER: digest, NEEDS: needs_teacher(trial.cfg)} if digest in new else {}


def _teachers(batch: Batch, rows: list[dict], say: Say) -> None:
    """The teachers' trials into the batch: failed ones with their reason, the count trained."""
    for r in rows:
        m, h = r["metrics"], r["config"]["teacher_hash"]
        if r["error"] or not m.get("run_id"):
            batch.failed_teachers[h] = r["error"] or "ended without a result"
            say(f"teacher FAILED: {r['config']['label']}: {batch.failed_teachers[h]}")
        elif not m.get("reused"):
            batch.teachers_trained += 1


def _result_row(r: dict | None, make: Callable[..., Row]) -> Row:
    if r is None:
        return make("FAILED", error="the trial ended without a result")
    m = r["metrics"]
    if r["error"]:
        return make("FAILED", error=r["error"])
    if stopped_early(r):
        return make("STOPPED early", dev=m.get("dev_metric"), error="stopped by the scheduler")
    status = "FINISHED earlier" if m.get("skipped") else "FINISHED"
    return make(status, dev=m.get("dev_metric"), test_avg_f1=m.get("test_avg_f1"), run_id=m.get("run_id"))


def _close_open_runs(ctx: Context, results: list[dict]) -> None:
    """Runs still open: the scheduler's (ASHA) early stops are KILLED with that reason; any other
    run whose trial ended without closing it lost its process: FAILED."""
    from pipeline.sweeps import tune_runner

    for r in results:
        if stopped_early(r) and r["trial_id"]:
            tags = {
                "sweep_hash": ctx.sweep_hash,
                "ray_trial_id": r["trial_id"],
                "mlflow.parentRunId": ctx.parent_id,
            }
            tracking.kill_stale(ctx.experiment, tags, tune_runner.EARLY_STOP)
    # children only: the parent run carries the sweep hash too, and it is still running
    tracking.kill_stale(
        ctx.experiment,
        {"sweep_hash": ctx.sweep_hash, "mlflow.parentRunId": ctx.parent_id},
        "the trial ended without finishing its run (its worker or node died)",
        status="FAILED",
    )
