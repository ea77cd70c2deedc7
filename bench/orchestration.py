"""Figure 1, orchestration overhead (and figure 7's sweep-driver memory).

N identical tiny student trials (vanilla KD; only the temperature differs, so every trial has
its own configuration and the same cost) run twice:
  - bare: the trial's own code (load config, data, reuse the teacher, distil, evaluate, log to
    MLflow) back to back in one process, with the thread count a trial gets (its CPU share);
  - sweep: the same trials as one real `run_sweep` through Ray Tune, `concurrency` at once.
Figure: sweep wall time / (sum of bare trial times / concurrency). The sweep's time includes
everything the user waits for: Ray's start, worker start-up, resume checks, the parent run.
The teacher is trained once beforehand (by neither side), so both measure students only.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import Context, Timer, child, cores, quiet, set_threads, write_study


def _temperatures(n: int, offset: float) -> list[float]:
    return [round(offset + 0.25 * i, 2) for i in range(n)]


def bare(ctx: Context, temperatures: list[float], threads: int) -> dict:
    """The trial body of `tune_runner.student_trial`, without Ray, back to back."""
    from pipeline.config.loader import load_experiment
    from pipeline.training.run import ensure_teacher, prepare, run_student

    set_threads(threads)
    base = ctx.overrides()
    cfg = load_experiment("default", base)
    data, device = prepare(cfg, quiet)
    with Timer() as t_teacher:
        ensure_teacher(cfg, data, device, say=quiet)  # trained here once, outside the timings
    times = []
    for temp in temperatures:
        with Timer() as t:
            cfg = load_experiment("default", [*base, f"loss.temperature={temp}"])
            data, device = prepare(cfg, quiet)
            teacher, teacher_run, _, _ = ensure_teacher(cfg, data, device, say=quiet)
            run_student(cfg, data, device, teacher, teacher_run, say=quiet)
        times.append(t.seconds)
    return {"trial_s": times, "teacher_s": t_teacher.seconds}


def sweep(ctx: Context, temperatures: list[float], concurrency: int) -> dict:
    """One real sweep of the same trials; its wall time from the call to the summary."""
    from pipeline.sweeps.sweep import run_sweep

    study = write_study(
        Path(ctx.work) / "studies" / "orchestration.yaml",
        "orchestration",
        {"loss.temperature": temperatures},
        {"max_concurrent": concurrency},
    )
    with Timer() as t:
        result = run_sweep(str(study), ctx.overrides(), say=quiet)
    finished = sum(r.status == "FINISHED" for r in result.rows)
    return {"sweep_s": t.seconds, "finished": finished, **timeline(result.experiment, result.parent_run_id)}


def timeline(experiment: str, parent_run_id: str) -> dict:
    """Where a sweep's time went, from its MLflow runs: seconds from the parent run's start to
    the first student run's start (Ray's start, workers importing the stack, the first trial's
    set-up), the students' own durations, and the gaps between consecutive runs of a slot."""
    from pipeline import tracking

    parent = tracking.get_run(parent_run_id)
    runs = tracking.search(experiment, {"sweep_hash": parent.data.tags["sweep_hash"], "stage": "student"})
    spans = sorted((r.info.start_time / 1000, r.info.end_time / 1000) for r in runs if r.info.end_time)
    if not spans:
        return {"startup_s": None, "in_sweep_trial_s": [], "gaps_s": []}
    t0 = parent.info.start_time / 1000
    ends = sorted(e for _, e in spans)
    # a run starting after a slot freed up waited for the earliest unclaimed end before it
    gaps, free = [], []
    for start, _ in spans:
        done = [e for e in ends if e <= start and e not in free]
        if done:
            free.append(done[-1])
            gaps.append(start - done[-1])
    return {
        "startup_s": spans[0][0] - t0,
        "in_sweep_trial_s": [e - s for s, e in spans],
        "gaps_s": gaps,
        "parent_s": parent.info.end_time / 1000 - t0,
    }


def measure(ctx: Context) -> dict:
    concurrency = max(1, min(cores(), 4))  # one CPU per trial, as the studies ask
    n = max(2, concurrency * ctx.scale.orchestration_waves)
    b = child(ctx, "orchestration:bare", temperatures=_temperatures(n, 1.0), threads=1)
    s = child(ctx, "orchestration:sweep", temperatures=_temperatures(n, 10.0), concurrency=concurrency)
    if s["finished"] != n:
        raise RuntimeError(f"orchestration sweep: {s['finished']} of {n} trials FINISHED")
    bare_sum = sum(b["trial_s"])
    ideal = bare_sum / concurrency
    ratio = s["sweep_s"] / ideal
    mean_trial = bare_sum / n
    met = ratio <= 1.15
    in_sweep = s["in_sweep_trial_s"]
    mean_in = sum(in_sweep) / len(in_sweep) if in_sweep else float("nan")
    gaps = s["gaps_s"]
    before = s["sweep_s"] - s.get("parent_s", s["sweep_s"])
    why = ""
    if not met:
        why = (
            f"The sweep took {s['sweep_s'] - ideal:.1f} s more than the ideal. Before the parent run: "
            f"{before:.1f} s (validating every trial's config, resume checks). From the parent run to "
            f"the first trial's run: {s['startup_s']:.1f} s (Ray's start, {concurrency} worker processes "
            f"importing torch/transformers/timm/MLflow, the first trial's data and teacher). Between "
            f"trials of a slot: {sum(gaps) / max(len(gaps), 1):.1f} s on average. A trial's run lasted "
            f"{mean_in:.1f} s inside the sweep (two trials and Ray's processes sharing {cores()} cores). "
            f"The fixed start-up is what weighs here: {n} trials of {mean_trial:.0f} s give the sweep "
            f"{ideal:.0f} s of ideal work, against thousands of trials in Ray's release test. Longer "
            "or more trials dilute it; a persistent Ray cluster (RAY_ADDRESS) removes Ray's start."
        )
    return {
        "value": ratio,
        "met": met,
        "target": "<= 1.15 (trials of 20 s or more)",
        "baseline": f"{n} trials back to back in one process: {bare_sum:.1f} s "
        f"(mean {mean_trial:.1f} s per trial, 1 thread each); ideal at {concurrency} at once {ideal:.1f} s",
        "measured": f"one real sweep through Ray Tune, {concurrency} trials at once: {s['sweep_s']:.1f} s",
        "why": why,
        "details": {
            "trials": n,
            "concurrency": concurrency,
            "bare_trial_s": b["trial_s"],
            "bare_teacher_s": b["teacher_s"],
            "sweep_s": s["sweep_s"],
            "ideal_s": ideal,
            "before_parent_s": before,
            "startup_s": s["startup_s"],
            "in_sweep_trial_s": in_sweep,
            "gaps_s": gaps,
            "sweep_driver_peak_rss_mb": s["peak_rss_mb"],
            "bare_process_peak_rss_mb": b["peak_rss_mb"],
        },
    }
