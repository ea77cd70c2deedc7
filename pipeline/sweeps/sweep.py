"""A whole study in one command: validate, resume, teachers first, then students, summary.

1. The study and every trial configuration are validated before Ray starts.
2. Resume: runs of this sweep (same `sweep_hash`) left RUNNING by a dead driver are marked
   KILLED; configurations with a FINISHED student run (same config hash) are not run again.
3. One parent MLflow run per invocation (tags study, dataset, git commit, sweep_hash; the study
   YAML as artifact); every teacher and student run it starts is its child.
4. Teachers first: one Ray trial per distinct teacher configuration not yet FINISHED, so a
   teacher is trained at most once even when student trials run side by side; students then
   find it through MLflow (its checkpoint artifact), on any node.
5. Students: one Ray trial per configuration and seed; a failing trial ends FAILED with its
   reason and the sweep goes on. Students of a teacher that failed are not started (FAILED,
   "teacher failed: <reason>"). A trial whose worker or node died ends FAILED with that cause
   and is run again `retries` times (default 1); a trial's own error is never retried.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from core.errors import ConfigError
from pipeline import tracking
from pipeline.config.loader import config_hash, to_dict
from pipeline.config.study import Trial, expand, load_study, make_trial, short
from pipeline.data.medpix import read_dataset

Say = Callable[[str], None]
NAMED = ("loss.name", "fusion.name", "seed")


@dataclass
class Row:
    label: str
    status: str  # FINISHED, FINISHED earlier, FAILED, STOPPED early
    dev: float | None = None
    test_avg_f1: float | None = None
    run_id: str | None = None
    error: str | None = None


@dataclass
class SweepResult:
    parent_run_id: str
    experiment: str
    metric: str
    rows: list[Row]
    teachers_trained: int  # FINISHED teacher runs this sweep trained (not reused)
    teachers_failed: int = 0


def study_kind(space: Mapping) -> str:
    """Which comparison a study is, from what it varies (the report picks its document so)."""
    keys = " ".join(space)
    for kind, marks in (
        ("loss", ("loss.name",)),
        ("fusion", ("fusion.",)),
        ("kd", ("temperature", "alpha")),
        ("backbone", ("vision", "text")),
    ):
        if any(m in keys for m in marks):
            return kind
    return "other"


def _key(key: str) -> str:
    """A space key for display: tied teacher/student keys show once, without the role."""
    first = key.split(",")[0].strip()
    return first.split(".", 1)[1] if "," in key and first.startswith(("teacher.", "student.")) else first


def _label(trial: Trial) -> str:
    return " ".join(f"{_key(k)}={short(v)}" for k, v in trial.point.items()) + f" seed={trial.seed}"


def _suffix(trial: Trial) -> str:
    """Run-name suffix for varied keys that the base name (dataset-fusion-loss-seed) lacks."""
    parts = [
        (k.split(",")[0].split(".")[-1], v)
        for k, v in trial.point.items()
        if not k.split(",")[0].endswith(NAMED)
    ]
    return "".join(f"-{short(v)}" if isinstance(v, Mapping) else f"-{name}{v}" for name, v in parts)


def _check_teacher_ranges(study, extra: Sequence[str]) -> None:
    """Ranges may not change the teacher: teachers are trained up front, per discrete value."""
    from pipeline.training.run import teacher_hash

    for key, spec in study.space.items():
        if isinstance(spec, tuple):
            continue
        base = {k: (v[0] if isinstance(v, tuple) else v["low"]) for k, v in study.space.items()}
        lo = make_trial(study, extra, {**base, key: spec["low"]}, study.seeds[0]).cfg
        hi = make_trial(study, extra, {**base, key: spec["high"]}, study.seeds[0]).cfg
        if teacher_hash(lo) != teacher_hash(hi):
            raise ConfigError(
                f"study {study.name!r}: space.{key}: a range may not change the teacher; use a list"
            )


def run_sweep(
    study_path: str, extra: Sequence[str] = (), seeds: int | None = None, say: Say = print
) -> SweepResult:
    from pipeline.sweeps import tune_runner
    from pipeline.training.run import experiment_name, teacher_hash

    study, text = load_study(study_path, seeds)
    extra = tuple(extra)
    if any(k.split(",")[0].strip() in ("dataset", "dataset.name") for k in study.space):
        raise ConfigError(
            f"study {study.name!r}: space: one sweep per dataset (set DATASET=...), not dataset in the space"
        )
    trials = expand(study, extra)  # every configuration validated here, before Ray
    _check_teacher_ranges(study, extra)
    first = trials[0].cfg
    read_dataset(first.dataset)  # bad data: one line now, not N failed trials
    exp = experiment_name(first)
    sweep_hash = config_hash({"study": to_dict(study), "extra": list(extra)})
    # Ray first: an unreachable cluster is one line, with nothing written to MLflow yet.
    tune_runner.start()
    # The root as resolved here (absolute), for trials in another working directory or node.
    pin = [f"dataset.root={first.dataset.root}"]
    stale = tracking.kill_stale(
        exp, {"sweep_hash": sweep_hash}, "driver died: found RUNNING when the sweep resumed"
    )
    if stale:
        say(f"resume: marked {len(stale)} run(s) left RUNNING by a dead driver as KILLED")
    finished = {
        r.data.tags.get("config_hash"): r for r in tracking.search(exp, {"stage": "student"}, "FINISHED")
    }
    optuna = study.search.algorithm == "optuna"
    todo = trials if optuna else [t for t in trials if t.config_hash not in finished]
    say(
        f"study {study.name}: {len(trials)} trial(s) on {first.dataset.name}, {len(trials) - len(todo)} already FINISHED"
    )
    tags = {
        "stage": "sweep",
        "study": study.name,
        "dataset": first.dataset.name,
        "sweep_hash": sweep_hash,
        "study_kind": study_kind(study.space),
    }
    with tracking.run(exp, f"{first.dataset.name}-{study.name}-sweep", tags) as parent:
        parent.text(text, "study.yaml")
        parent.params(
            {
                "study": study.name,
                "search": study.search.algorithm,
                "metric": study.metric,
                "seeds": list(study.seeds),
                "overrides": " ".join(extra),
                "trials": len(trials),
            }
        )
        child_tags = {"study": study.name, "sweep_hash": sweep_hash}
        teachers = {teacher_hash(t.cfg): t for t in todo}
        done_teachers = {
            r.data.tags.get("teacher_hash") for r in tracking.search(exp, {"stage": "teacher"}, "FINISHED")
        }
        new = {h: t for h, t in teachers.items() if h not in done_teachers}
        common = {"experiment": study.experiment, "parent": parent.run_id, "tags": child_tags}
        res = {
            "cpu": study.resources.cpu,
            "gpu": study.resources.gpu,
            "max_concurrent": study.max_concurrent,
            "retries": study.retries,
            "experiment": exp,
            "tags": child_tags,
        }
        trained, failed_teachers = 0, {}
        if new:
            say(f"teachers: training {len(new)} distinct teacher configuration(s)")
            confs = [
                {
                    **common,
                    "label": f"teacher seed={t.seed} hash={h[:8]}",
                    "overrides": [*t.overrides, *pin],
                    "teacher_hash": h,
                }
                for h, t in new.items()
            ]
            for r in tune_runner.run_trials(
                "teacher", confs, name=f"{study.name}-teachers", columns=[], **res
            ):
                m, h = r["metrics"], r["config"]["teacher_hash"]
                if r["error"] or not m.get("run_id"):
                    failed_teachers[h] = r["error"] or "ended without a result"
                    say(f"teacher FAILED: {r['config']['label']}: {failed_teachers[h]}")
                elif not m.get("reused"):
                    trained += 1
        # students of a failed teacher are not started: FAILED with the teacher's reason
        blocked = [t for t in todo if teacher_hash(t.cfg) in failed_teachers]
        runnable = [t for t in todo if teacher_hash(t.cfg) not in failed_teachers]
        common["failed_teachers"] = failed_teachers
        metric_key = study.metric
        if optuna:
            fixed = {
                **common,
                "fixed": list(study.overrides),
                "extra": [*extra, *pin],
                "seeds": list(study.seeds),
                "metric": metric_key,
                "overrides": [],
            }
            opt = {
                "fixed": fixed,
                "space": study.space,
                "num_samples": study.search.num_samples,
                "seed": study.search.seed,
            }
            results = tune_runner.run_trials(
                "student",
                [],
                name=f"{study.name}-students",
                columns=[f"point/{k}" for k in study.space],
                metric="dev_metric",
                mode=study.mode,
                asha=study.scheduler == "asha",
                optuna=opt,
                **res,
            )
        else:
            confs = [
                {
                    **common,
                    "label": _label(t),
                    "overrides": [*t.overrides, *pin],
                    "metric": metric_key,
                    "suffix": _suffix(t),
                }
                for t in runnable
            ]
            results = (
                tune_runner.run_trials(
                    "student",
                    confs,
                    name=f"{study.name}-students",
                    columns=[],
                    metric="dev_metric",
                    mode=study.mode,
                    asha=study.scheduler == "asha",
                    **res,
                )
                if confs
                else []
            )
        # Runs still open: the scheduler's (ASHA) early stops are KILLED with that reason; any
        # other run whose trial ended without closing it lost its process: FAILED.
        for r in results:
            if _stopped_early(r) and r["trial_id"]:
                tags = {"sweep_hash": sweep_hash, "ray_trial_id": r["trial_id"]}
                tracking.kill_stale(exp, tags, tune_runner.EARLY_STOP)
        tracking.kill_stale(
            exp,
            {"sweep_hash": sweep_hash},
            "the trial ended without finishing its run (its worker or node died)",
            status="FAILED",
        )
        rows = _rows(trials, todo, finished, results, optuna, f"best_{study.metric}")
        rows += [
            Row(_label(t), "FAILED", error=f"teacher failed: {failed_teachers[teacher_hash(t.cfg)]}")
            for t in blocked
        ]
        failed = sum(r.status == "FAILED" for r in rows)
        parent.metrics(
            {"trials_finished": sum(r.status.startswith("FINISHED") for r in rows), "trials_failed": failed}
        )
        parent.tags({"trials_failed": failed})
        # what the report stage reads: every configuration of the sweep and its run (or error)
        parent.json([dataclasses.asdict(r) for r in rows], "trials.json")
        parent_id = parent.run_id
    reverse = study.mode == "max"
    rows.sort(key=lambda r: (r.dev is None, -(r.dev or 0) if reverse else (r.dev or 0)))
    return SweepResult(parent_id, exp, study.metric, rows, trained, len(failed_teachers))


def _stopped_early(result: dict) -> bool:
    """Ended by the scheduler: no error, and no final result (run id) reported."""
    return not result["error"] and "run_id" not in result["metrics"]


def _rows(
    trials: list[Trial], todo: list[Trial], finished: dict, results: list[dict], optuna: bool, best: str
) -> list[Row]:
    rows = []
    if not optuna:
        todo_hashes = {t.config_hash for t in todo}
        for t in trials:
            if t.config_hash not in todo_hashes:
                run = finished[t.config_hash]
                m = run.data.metrics
                rows.append(
                    Row(_label(t), "FINISHED earlier", m.get(best), m.get("test/avg_f1"), run.info.run_id)
                )
    for r in results:
        m, label = (
            r["metrics"],
            r["config"].get("label") or " ".join(f"{k}={v}" for k, v in r["config"].get("point", {}).items()),
        )
        if r["error"]:
            rows.append(Row(label, "FAILED", error=r["error"]))
        elif _stopped_early(r):
            rows.append(Row(label, "STOPPED early", m.get("dev_metric"), error="stopped by the scheduler"))
        else:
            status = "FINISHED earlier" if m.get("skipped") else "FINISHED"
            rows.append(Row(label, status, m.get("dev_metric"), m.get("test_avg_f1"), m.get("run_id")))
    return rows
