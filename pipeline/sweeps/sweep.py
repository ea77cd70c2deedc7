"""A whole study in one command: validate, resume, then each phase's batch, summary.

1. The study and every trial configuration are validated before Ray starts (a phase that starts
   from an earlier phase's choice is validated on a stand-in choice), and the dataset is read
   once, as a check. Validation imports no torch, MLflow or Ray (pipeline.config.extensions):
   a bad file is one line within a second. Ray then starts in a thread while this process
   opens the MLflow store (on a cluster, RAY_ADDRESS, only once the cluster answered: one that
   cannot be reached is one line, with nothing written to MLflow).
2. Resume: runs of this sweep (same `sweep_hash`) left RUNNING by a dead driver are marked
   KILLED; configurations with a FINISHED student run (same config hash) are not run again.
3. One parent MLflow run per invocation (tags study, dataset, git commit, sweep_hash; the study
   YAML as artifact); every teacher and student run it starts is its child.
4. Each phase (a study without `phases` is one) runs as one batch (pipeline.sweeps.batch):
   teachers first, then students; a failing trial ends FAILED with its reason and the sweep
   goes on. A phase with `best_of` starts from the configuration with the best mean dev metric
   in those phases, chosen on validation, never on test.
5. The parent gets `trials.json` (every trial of every phase: its run or error) and, for a
   phased study, `phases.json` (what each phase chose): what the report stage reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from core.errors import ConfigError
from core.schema import DatasetConfig
from pipeline import tracking
from pipeline.config.identity import experiment_name, teacher_hash
from pipeline.config.loader import config_hash, to_dict
from pipeline.config.names import sweep_name
from pipeline.config.phases import Phase, choose
from pipeline.config.study import (
    StudyConfig,
    Trial,
    expand,
    expand_phase,
    load_study,
    make_trial,
    plan_trials,
)
from pipeline.sweeps import summary
from pipeline.sweeps.batch import Context, Row, fed, resources, run_batch
from pipeline.sweeps.cluster import address, release_local
from pipeline.sweeps.register import Registrar  # imports torch only to register

Say = Callable[[str], None]


@dataclass
class SweepResult:
    parent_run_id: str
    experiment: str
    metric: str
    rows: list[Row]
    teachers_trained: int  # FINISHED teacher runs this sweep trained (not reused)
    teachers_failed: int = 0
    phases: list[dict] = dataclasses.field(default_factory=list)
    best_yaml: str = ""  # an optuna study's best configuration: its artifact on the parent run


def study_kind(space: Mapping, report: str = "") -> str:
    """Which comparison a study is: its `report`, else from what it varies."""
    if report:
        return report
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


def _check_teacher_ranges(study: StudyConfig, extra: Sequence[str]) -> None:
    """Ranges may not change the teacher: teachers are trained up front, per discrete value."""
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


def check_data(cfg: DatasetConfig) -> None:
    """Read and check the dataset's splits with the readers pipeline.data.dataset.read_splits
    uses, without importing torch (that module builds torch datasets): one line on bad data."""
    if cfg.format == "chestxray":
        from pipeline.data.chestxray import samples
    elif cfg.is_bags:
        from pipeline.data.mil import samples
    else:
        from pipeline.data.medpix import read_dataset as samples
    samples(cfg)


def start_ray() -> Callable[[], None]:
    """Ray (pipeline.sweeps.cluster.connect) and Ray Tune's import in a thread; returns the wait
    for it, which raises its error (ClusterError) in the caller. The thread mostly waits on Ray's processes, so the caller's own work
    (opening MLflow) runs meanwhile."""
    import ray  # noqa: F401  (here: one thread imports Ray's modules, the other MLflow's)

    from pipeline.sweeps.cluster import connect, sigterm_exits

    errors: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            connect()
            from pipeline.sweeps import tune_runner  # noqa: F401  (Ray Tune: ~1 s of imports)
        except BaseException as e:  # handed to the caller's thread
            errors.append(e)
        finally:
            done.set()
        if not errors:
            # Ray's processes get Linux's parent-death signal, which follows the *thread* that
            # started them: were this thread to end, they would be killed. It stays, parked.
            threading.Event().wait()

    thread = threading.Thread(target=target, name="kdsweep-ray-start", daemon=True)
    thread.start()

    def wait() -> None:
        done.wait()
        if errors:
            raise errors[0]
        sigterm_exits()

    return wait


def run_sweep(
    study_path: str,
    extra: Sequence[str] = (),
    seeds: int | None = None,
    say: Say = print,
    release_ray: bool = False,
) -> SweepResult:
    """Run a study (module docstring). `release_ray`: once the trials are done, shut down the Ray
    this sweep started on this machine, in the background (the sweep command's last sweep: it
    overlaps the parent run's last writes and the registration instead of following them at
    exit); a Ray running before, a cluster, or a caller's next sweep keep theirs."""
    study, text = load_study(study_path, seeds)
    extra = tuple(extra)
    spaces = [study.space] + [p.space for p in study.phases]
    if any(k.split(",")[0].strip() in ("dataset", "dataset.name") for s in spaces for k in s):
        raise ConfigError(
            f"study {study.name!r}: space: one sweep per dataset (set DATASET=...), not dataset in the space"
        )
    validated, planned = plan_trials(study, extra)  # every configuration, before Ray
    _check_teacher_ranges(study, extra)
    first = validated[0].cfg
    check_data(first.dataset)  # bad data: one line now, not N failed trials
    exp = experiment_name(first)
    described = {k: v for k, v in to_dict(study).items() if not (k == "ensemble" and v is None)}
    sweep_hash = config_hash({"study": described, "extra": list(extra)})  # as before `ensemble` existed
    ray_ready = start_ray()
    if address():  # a cluster that cannot be reached or refuses us: one line, nothing in MLflow
        ray_ready()
    # Ray on this machine: MLflow's import and the store's set-up (~3 s) overlap its start
    stale = tracking.kill_stale(
        exp, {"sweep_hash": sweep_hash}, "driver died: found RUNNING when the sweep resumed"
    )
    ray_ready()
    if stale:
        say(f"resume: marked {len(stale)} run(s) left RUNNING by a dead driver as KILLED")
    plan = study.plan()
    shown = f" in {len(plan)} phases ({', '.join(p.name for p in plan)})" if study.phases else ""
    say(f"study {study.name}: {planned} trial(s){shown} on {first.dataset.name}")
    kind = study_kind({k: v for s in spaces for k, v in s.items()}, study.report)
    tags = {
        "stage": "sweep",
        "study": study.name,
        "dataset": first.dataset.name,
        "sweep_hash": sweep_hash,
        "study_kind": kind,
    }
    # the registration is said once the parent run ended (Registrar.__exit__), Ray released before
    with (
        Registrar(warm=first.tracking.log_models == "chosen") as registrar,
        tracking.run(exp, sweep_name(study.name, first.dataset.name), tags) as parent,
    ):
        parent.text(text, "study.yaml")
        parent.params(
            {
                "study": study.name,
                "search": study.search.algorithm,
                "metric": study.metric,
                "seeds": list(study.seeds),
                "overrides": " ".join(extra),
                "trials": planned,
            }
        )
        ctx = Context(study, extra, exp, sweep_hash, parent.run_id, [f"dataset.root={first.dataset.root}"])
        rows, trained, failed_teachers, phases = [], 0, 0, []
        with contextlib.ExitStack() as stack:
            if fed(ctx):  # every batch in one Tune run (pipeline.sweeps.session)
                from pipeline.sweeps.session import Session

                name = f"{study.name}-{parent.run_id[:8]}"
                ctx.session = stack.enter_context(Session(name=name, **resources(ctx)))
            for phase in plan:
                trials, chosen = _phase_trials(study, phase, extra, rows, say)
                if study.phases:
                    phases.append(_phase_record(phase, chosen))
                if trials is None:
                    continue
                batch = run_batch(ctx, trials, phase.name, say)
                rows += batch.rows
                trained += batch.teachers_trained
                failed_teachers += len(batch.failed_teachers)
        try:  # Tune winds down meanwhile (Session.__exit__)
            if study.ensemble is not None:  # the members' fold models combined: runs of their own
                from pipeline.sweeps import ensemble

                parent.json(ensemble.run(ctx, rows, say), "ensembles.json")
            ordered = summary.ordered(rows, study.mode, bool(study.phases))
            if first.tracking.log_models == "chosen":
                registrar.start(study, first.dataset.name, ordered, plan, parent.run_id, say)
            failed = sum(r.status == "FAILED" for r in rows)
            parent.metrics(
                {
                    "trials_finished": sum(r.status.startswith("FINISHED") for r in rows),
                    "trials_failed": failed,
                }
            )
            parent.tags({"trials_failed": failed})
            # what the report stage reads: every configuration of the sweep and its run (or error)
            parent.json([dataclasses.asdict(r) for r in rows], "trials.json")
            if phases:
                parent.json(phases, "phases.json")
            best_yaml = _log_best(study, first.dataset.name, rows, parent, say)
            rows = ordered
            parent.describe(
                summary.markdown(
                    study.name, first.dataset.name, study.metric, rows, bool(study.phases), trained
                )
            )
            parent_id = parent.run_id
        finally:  # Tune has wound down before Ray goes, or the sweep returns or fails
            if ctx.session is not None:
                ctx.session.close()
        if release_ray:
            release_local()
    return SweepResult(parent_id, exp, study.metric, rows, trained, failed_teachers, phases, best_yaml)


def _log_best(study: StudyConfig, dataset: str, rows: list[Row], parent, say: Say) -> str:
    """An optuna study's best configuration (chosen on dev) as an experiment YAML on the parent
    run (pipeline.sweeps.tuning); its artifact name, or "" when there is none."""
    if study.search.algorithm != "optuna":
        return ""
    from pipeline.sweeps.tuning import best_yaml, file_name

    found = best_yaml(
        [dataclasses.asdict(r) for r in rows],
        study=study.name,
        dataset=dataset,
        metric=study.metric,
        mode=study.mode,
        sweep_run_id=parent.run_id,
        config_text=lambda run_id: tracking.read_text(run_id, "config.yaml"),
    )
    if found is None:
        say("no FINISHED configuration on a seed every configuration ran: no best configuration written")
        return ""
    parent.text(found[1], file_name(dataset, study.name))
    return file_name(dataset, study.name)


def _phase_trials(
    study: StudyConfig, phase: Phase, extra: tuple[str, ...], rows: list[Row], say: Say
) -> tuple[list[Trial] | None, dict | None]:
    """The phase's trials, from the configuration its `best_of` phases chose (None: nothing to
    start from, every candidate failed), and that choice."""
    if not phase.best_of:
        # a study without phases is one of its own search: a grid, random draws, or (optuna) the
        # validated corners of its ranges, whose teachers run first; a phase is always a grid
        return (expand_phase(study, phase, extra) if study.phases else expand(study, extra)), None
    candidates = [
        dataclasses.asdict(r)
        for r in rows
        if r.phase in phase.best_of and r.status.startswith("FINISHED") and r.run_id
    ]
    chosen = choose(candidates, study.mode)
    if chosen is None:
        say(f"phase {phase.name}: skipped, no FINISHED configuration in {', '.join(phase.best_of)}")
        return None, None
    say(
        f"phase {phase.name}: starting from {chosen.exp_id} (best mean {study.metric} "
        f"{chosen.dev:.4f} in {', '.join(phase.best_of)}, chosen on dev)"
    )
    record = {
        "exp_id": chosen.exp_id,
        "run_ids": list(chosen.run_ids),
        "point": chosen.point,
        "dev": chosen.dev,
    }
    return expand_phase(study, phase, extra, chosen.defining), record


def _phase_record(phase: Phase, chosen: dict | None) -> dict:
    return {"name": phase.name, "id": phase.prefix, "best_of": list(phase.best_of), "chosen": chosen}
