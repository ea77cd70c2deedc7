"""Figure 1's account of the fixed start-up: the parts of a sweep's first trial, its start and its
end, timed one by one in a fresh process (the sweep's own timeline shows only where its runs
start and end). Each is what one process pays once; on 2 cores the sweep's processes pay them
side by side, so they overlap, and the sum is not the start-up itself."""

from __future__ import annotations

import time

from bench.common import Context, quiet, set_threads
from bench.orchestration import NO_CACHE  # as the orchestration sweep runs


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
