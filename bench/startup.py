"""Figure 1's account of the fixed start-up (`why`): the first trials' start as their Ray workers'
process titles show it (`scan`, `trial_workers`, sampled while the sweep runs; the sweep's own
MLflow timeline shows only where its runs start and end), and the parts of a trial, of the
sweep's start and of its end, timed one by one in a fresh process (`parts`). Each part is what
one process pays once; on 2 cores the sweep's processes pay them side by side, so they overlap,
and their sum is not the start-up itself."""

from __future__ import annotations

import time

from bench.common import NO_CACHE, Context, quiet, set_threads


def parts(ctx: Context, run_id: str) -> dict:
    """Seconds of each part, in the order a trial's worker meets them, then the sweep's end:
    Ray and Ray Tune's import; the training stage's (torch, timm, transformers, MLflow's
    client); the trial's config; MLflow's store (its first query: the SQL store's set-up);
    the data; the reused teacher; then Ray's start and shutdown on this machine; and the
    registration's rebuild of `run_id`'s student with every import done (what the sweep's
    registration child has left once it warmed while the trials ran)."""
    marks: list[tuple[str, float]] = [("start", time.perf_counter())]

    def mark(name: str) -> None:
        marks.append((name, time.perf_counter()))

    import ray

    import pipeline.sweeps.trials  # noqa: F401  (Ray Tune's import, as a trial's worker meets it)

    mark("ray_tune_import_s")
    from pipeline import tracking
    from pipeline.training.run import ensure_teacher, prepare

    mark("training_import_s")
    from pipeline.config.loader import load_experiment

    set_threads(1)
    cfg = load_experiment("default", [*ctx.overrides(), NO_CACHE])
    mark("config_s")
    tracking.find_finished("kdsweep-none", {"stage": "student"})
    mark("mlflow_store_s")
    data, device = prepare(cfg, quiet)
    mark("data_s")
    ensure_teacher(cfg, data, device, say=quiet)
    mark("teacher_s")
    from pipeline.sweeps.cluster import connect

    connect()
    mark("ray_start_s")
    ray.shutdown()
    mark("ray_shutdown_s")
    import pipeline.data.text  # noqa: F401  (what the registration child imports while it warms)
    import pipeline.training.export  # noqa: F401
    from pipeline.sweeps.register import register_chosen

    mark("registration_import_s")  # little left: the training stage's import had most of it
    register_chosen(run_id, "bench-startup-student", {"bench": "startup"}, quiet)
    mark("registration_rebuild_s")
    return {name: t - marks[i][1] for i, (name, t) in enumerate(marks[1:])}


# A Ray worker's process title (argv[0]) says what it does: Ray sets it once the worker joined
# (IDLE), when Tune's trial actor is being built in it (__init__), once built, and while the
# trial runs (train). Checked most specific first: each later title starts like the one before.
TITLES = (
    ("ray::ImplicitFunc.train", "train_s"),
    ("ray::ImplicitFunc.__init__", "actor_init_s"),
    ("ray::ImplicitFunc", "actor_ready_s"),
    ("ray::IDLE", "joined_s"),
)
STAGES = ("spawned_s", "joined_s", "actor_init_s", "actor_ready_s", "train_s")


def scan(workers: dict[int, dict[str, float]], start: float) -> None:
    """Record each Ray worker process started since `start`: when the kernel created it, and the
    first time each title of TITLES was seen (seconds from `start`)."""
    import psutil

    now = time.time() - start
    for p in psutil.process_iter(["pid", "cmdline", "create_time"]):
        line = " ".join(p.info["cmdline"] or []).strip()
        if (p.info["create_time"] or 0) < start or not (
            line.startswith("ray::") or "default_worker.py" in line
        ):
            continue
        seen = workers.setdefault(p.info["pid"], {"spawned_s": p.info["create_time"] - start})
        stage = next((key for title, key in TITLES if line.startswith(title)), None)
        if stage:
            seen.setdefault(stage, now)


def trial_workers(workers: dict[int, dict[str, float]], n: int) -> dict[str, float]:
    """The first `n` workers to start a trial: the median of each stage's time (a stage the
    sampling missed happened before the next one seen: that time stands in for it)."""
    started = sorted((w for w in workers.values() if "train_s" in w), key=lambda w: w["train_s"])[:n]
    out = {}
    for i, stage in enumerate(STAGES):
        times = sorted(next(w[s] for s in STAGES[i:] if s in w) for w in started)
        if times:
            out[stage] = (times[(len(times) - 1) // 2] + times[len(times) // 2]) / 2
    return out


def why(fixed: float, s: dict, a: dict, c: int, run: float, trial: float, gap: float) -> str:
    """Where the fixed start-up went: the sweep's timeline, and each part timed alone
    (bench.startup.parts: a fresh process, so parts the sweep runs side by side add up here)."""
    first = s["to_first_run_s"] - s["to_parent_run_s"]
    worker = " + ".join(
        f"{label} {a[key]:.1f} s"
        for key, label in (
            ("ray_tune_import_s", "Ray and Tune's import"),
            ("training_import_s", "torch, timm, transformers and MLflow's import"),
            ("config_s", "config"),
            ("mlflow_store_s", "MLflow's store"),
            ("data_s", "data"),
            ("teacher_s", "teacher"),
        )
    )
    return (
        f"Fixed start-up {fixed:.1f} s. Before the first student run: {s['to_parent_run_s']:.1f} s to the "
        f"parent run (Python, validation, and Ray's start, {a['ray_start_s']:.1f} s alone, with MLflow's "
        f"import beside it), then {first:.1f} s to the first run. "
        + _first_trial(s, c, worker)
        + " After the last "
        f"run: {s['after_last_run_s']:.1f} s: Ray Tune winding down, the parent run's last writes and the "
        f"chosen student's registration side by side; the registration's rebuild takes "
        f"{a['registration_rebuild_s']:.1f} s once its child has imported what a trial imports (above). "
        "The child starts with the sweep at the lowest CPU priority and imports on whatever CPU the trials "
        "leave idle: on cores the trials keep busy, much of it only once they end, beside Ray Tune's "
        "wind-down. Ray's "
        f"shutdown ({a['ray_shutdown_s']:.1f} s alone) runs in the background. Tried: Ray's prestarted "
        "workers with a setup hook importing torch (Ray Tune's trial actors carry a runtime_env of their "
        "own and never take a prestarted worker: each trial still started a new one, so the imports stay in "
        "each trial's worker). Per trial: "
        f"a run lasted {run:.1f} s in the sweep against {trial:.1f} s for the whole bare trial, and "
        f"{gap:.1f} s passed between two runs of a slot (Ray Tune's hand-over, a new worker's imports, the "
        "config, data and teacher of the next trial). A persistent Ray cluster (RAY_ADDRESS) removes Ray's "
        "start; longer trials dilute the hand-over."
    )


def _first_trial(s: dict, c: int, worker: str) -> str:
    """The first trials' start, event by event, from their workers' process titles (seconds from
    the command's start; the median of the first `c` trial workers)."""
    w, run = s.get("trial_workers") or {}, s["to_first_run_s"]
    if "train_s" not in w:  # no title seen (another platform): the parts alone
        return f"Ray Tune starts {c} trial workers, each paying {worker} (timed alone)."
    steps = [
        ("spawned_s", "joined_s", "Ray's worker bootstrap (a new Python process joining Ray)"),
        ("joined_s", "actor_init_s", "waiting for Ray Tune to create and place the trial"),
        ("actor_init_s", "actor_ready_s", "building Tune's trial actor in it"),
        ("actor_ready_s", "train_s", "Tune starting the trial function"),
    ]
    said = "; ".join(f"{w[b] - w[a]:.1f} s {what}" for a, b, what in steps)
    return (
        f"Its {c} trial workers (the median of the first {c}, from their process titles sampled every "
        f"0.1 s): the worker process started at {w['spawned_s']:.1f} s from the command's start, then "
        f"{said}; the trial function ran from {w['train_s']:.1f} s and opened its MLflow run "
        f"{run - w['train_s']:.1f} s later, having paid {worker} (timed alone; the {c} workers pay them "
        f"side by side on {c} cores, beside the driver and the registration child)."
    )
