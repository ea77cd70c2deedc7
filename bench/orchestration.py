"""Figure 1, orchestration overhead, as two numbers (and figure 7's sweep-driver memory).

N identical tiny student trials (vanilla KD; only the temperature differs, so every trial has
its own configuration and the same cost) run `c` at a time (c = min(cores, 4), one CPU each, as
the studies ask), twice:
  - bare: the trial's own code (load the config, the data, reuse the teacher, distil, evaluate,
    log to MLflow) in c plain processes side by side, each running its share back to back after
    an untimed warm-up (imports, data, teacher); no Ray. T = the mean bare trial time.
  - sweep: the same trials as one real `python -m pipeline sweep <study> --no-report` command,
    timed from its start to its exit: W. Each student run's start and end come from MLflow; a
    run's gap is the time from the end of the run before it in its slot (the earliest freed
    slot) to its start: Ray Tune handing the worker over, loading the config, data and teacher.
The teacher is trained once beforehand (by neither side), so both measure students only.

  - fixed start-up F = W - (sum of the in-sweep runs + sum of the gaps) / c: what the sweep costs
    once, however many trials it has. For slots that start together it is the time from the
    command's start to the first run's start (Python, validation, Ray's start, the parent run,
    the workers importing torch and MLflow, the first data and teacher) plus the time from the
    last run's end to the exit (the summary, Ray's shutdown). Target <= 15 s on 2 cores.
  - per-trial overhead P = (mean in-sweep run + mean gap) / T - 1: what every trial costs in
    the sweep beyond the same trial without Ray (the hand-over between trials, and the runs
    slowed by Ray's own processes), as a share of a trial. Target <= 3 %.
So W = F + (N / c) * T * (1 + P): short sweeps pay F, long ones P.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import NO_CACHE, REPO, Context, Timer, child, cores, quiet, set_threads, write_study
from bench.startup import scan, trial_workers, why

FIXED_S, PER_TRIAL_PCT = 15.0, 3.0


def _temperatures(n: int, offset: float) -> list[float]:
    return [round(offset + 0.25 * i, 2) for i in range(n)]


def teacher(ctx: Context) -> dict:
    """Train the teacher both sides reuse (once, outside every timing)."""
    from pipeline.config.loader import load_experiment
    from pipeline.training.run import ensure_teacher, prepare

    set_threads(1)
    cfg = load_experiment("default", ctx.overrides())
    data, device = prepare(cfg, quiet)
    with Timer() as t:
        ensure_teacher(cfg, data, device, say=quiet)
    return {"teacher_s": t.seconds}


def bare(ctx: Context, temperatures: list[float], threads: int, barrier: str, parties: int) -> dict:
    """The trial body of `trials.student_trial`, without Ray, back to back; the timed
    trials start when all `parties` processes are warm, so they run side by side."""
    from pipeline.config.loader import load_experiment
    from pipeline.training.run import ensure_teacher, prepare, run_student

    set_threads(threads)
    base = [*ctx.overrides(), NO_CACHE]
    cfg = load_experiment("default", base)
    data, device = prepare(cfg, quiet)
    ensure_teacher(cfg, data, device, say=quiet)  # warm: found in MLflow, loaded
    folder = Path(barrier)
    (folder / f"{time.monotonic_ns()}").touch()
    deadline = time.monotonic() + 600
    while len(list(folder.iterdir())) < parties and time.monotonic() < deadline:
        time.sleep(0.05)
    times = []
    for temp in temperatures:
        with Timer() as t:
            cfg = load_experiment("default", [*base, f"loss.temperature={temp}"])
            data, device = prepare(cfg, quiet)
            teacher_, teacher_run, _, _ = ensure_teacher(cfg, data, device, say=quiet)
            run_student(cfg, data, device, teacher_, teacher_run, say=quiet)
        times.append(t.seconds)
    return {"trial_s": times}


def _vm_hwm_mb(pid: int) -> float | None:
    """A live process's peak resident memory so far (Linux), None elsewhere or once it exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) / 1024 if m else None


def sweep(ctx: Context, temperatures: list[float], concurrency: int) -> dict:
    """One real sweep command of the same trials, timed from its start to its exit; its
    timeline from MLflow, its first trial workers' start-up from their process titles (sampled
    every 0.1 s until `concurrency` trials run, a scan costing a few ms) and the driver's peak
    memory (sampled while it runs)."""
    study = write_study(
        Path(ctx.work) / "studies" / "orchestration.yaml",
        "orchestration",
        {"loss.temperature": temperatures},
        {"max_concurrent": concurrency},
    )
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "sweep",
        str(study),
        *ctx.overrides(),
        NO_CACHE,
        "--no-report",
    ]
    peak, workers = 0.0, {}
    start = time.time()
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with ThreadPoolExecutor(1) as pool:  # drain the output while sampling memory
        out = pool.submit(proc.stdout.read)
        while proc.poll() is None:
            peak = max(peak, _vm_hwm_mb(proc.pid) or 0.0)
            starting = sum("train_s" in w for w in workers.values()) < concurrency
            if starting:
                scan(workers, start)
            time.sleep(0.1 if starting else 0.2)
        log = out.result()
    end = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"the sweep exited {proc.returncode}:\n" + "\n".join(log.splitlines()[-15:]))
    m = re.search(r"parent run (\w+) in MLflow experiment (\S+);", log)
    if not m:
        raise RuntimeError("the sweep printed no parent run:\n" + "\n".join(log.splitlines()[-15:]))
    return {
        "sweep_s": end - start,
        "driver_peak_rss_mb": peak or None,
        "trial_workers": trial_workers(workers, concurrency),
        **timeline(m.group(2), m.group(1), start, end),
    }


def timeline(experiment: str, parent_run_id: str, start: float, end: float) -> dict:
    """Where a sweep's time went, from its MLflow runs (epoch seconds): the student runs'
    durations, the gaps between consecutive runs of a slot, and the command's start and end
    relative to the first run's start and the last run's end."""
    from pipeline import tracking

    parent = tracking.get_run(parent_run_id)
    runs = tracking.search(experiment, {"sweep_hash": parent.data.tags["sweep_hash"], "stage": "student"})
    spans = sorted(
        (r.info.start_time / 1000, r.info.end_time / 1000)
        for r in runs
        if r.info.end_time and r.info.status == "FINISHED"
    )
    if not spans:
        return {"finished": 0, "in_sweep_trial_s": [], "gaps_s": []}
    a_run = next(r.info.run_id for r in runs if r.info.end_time and r.info.status == "FINISHED")
    ends = sorted(e for _, e in spans)
    # a run starting after a slot freed up waited for the latest unclaimed end before it
    gaps, claimed = [], []
    for s, _ in spans:
        done = [e for e in ends if e <= s and e not in claimed]
        if done:
            claimed.append(done[-1])
            gaps.append(s - done[-1])
    return {
        "finished": len(spans),
        "student_run_id": a_run,
        "in_sweep_trial_s": [e - s for s, e in spans],
        "gaps_s": gaps,
        "to_parent_run_s": parent.info.start_time / 1000 - start,
        "to_first_run_s": spans[0][0] - start,
        "after_last_run_s": end - max(ends),
    }


def measure(ctx: Context) -> dict:
    c = max(1, min(cores(), 4))  # one CPU per trial, as the studies ask
    n = max(2, c * ctx.scale.orchestration_waves)
    t = child(ctx, "orchestration:teacher")
    temps = _temperatures(n, 1.0)
    barrier = Path(ctx.work) / f"orchestration-barrier-{time.monotonic_ns()}"
    barrier.mkdir(parents=True)
    with ThreadPoolExecutor(c) as pool:
        shares = [
            pool.submit(
                child,
                ctx,
                "orchestration:bare",
                temperatures=temps[i::c],
                threads=1,
                barrier=str(barrier),
                parties=c,
            )
            for i in range(c)
        ]
        b = [f.result() for f in shares]
    s = child(ctx, "orchestration:sweep", temperatures=_temperatures(n, 10.0), concurrency=c)
    if s["finished"] != n:
        raise RuntimeError(f"orchestration sweep: {s['finished']} of {n} student runs FINISHED")
    account = child(ctx, "startup:parts", run_id=s["student_run_id"])  # bench.startup
    bare_s = [x for r in b for x in r["trial_s"]]
    trial = sum(bare_s) / n
    runs, gaps = s["in_sweep_trial_s"], s["gaps_s"]
    run, gap = sum(runs) / n, (sum(gaps) / len(gaps) if gaps else 0.0)
    fixed = s["sweep_s"] - (sum(runs) + sum(gaps)) / c
    per_trial = 100 * ((run + gap) / trial - 1)
    parts = [
        {
            "label": "fixed start-up",
            "value": fixed,
            "unit": "s",
            "target": f"<= {FIXED_S:.0f} s",
            "met": fixed <= FIXED_S,
        },
        {
            "label": "per-trial overhead",
            "value": per_trial,
            "unit": "%",
            "target": f"<= {PER_TRIAL_PCT:.0f} % of a trial",
            "met": per_trial <= PER_TRIAL_PCT,
        },
    ]
    met = all(p["met"] for p in parts)
    ideal = n * trial / c
    why_ = why(fixed, s, account, c, run, trial, gap) if not met else ""
    return {
        "value": fixed,
        "unit": "s",
        "met": met,
        "target": f"fixed start-up <= {FIXED_S:.0f} s; per-trial overhead <= {PER_TRIAL_PCT:.0f} % of a trial",
        "parts": parts,
        "baseline": f"the same {n} trials without Ray, {c} plain processes side by side: mean {trial:.1f} s "
        f"per trial (1 thread each); {ideal:.1f} s for {n / c:g} trials per slot",
        "measured": f"one real `python -m pipeline sweep` through Ray Tune, {c} trials at once: "
        f"{s['sweep_s']:.1f} s from the command's start to its exit ({s['sweep_s'] / ideal:.2f}x the bare "
        f"time); in-sweep runs {run:.1f} s, gaps {gap:.1f} s",
        "why": why_,
        "details": {
            "trials": n,
            "concurrency": c,
            "bare_trial_s": bare_s,
            "bare_teacher_s": t["teacher_s"],
            "sweep_s": s["sweep_s"],
            "ideal_s": ideal,
            "fixed_startup_s": fixed,
            "per_trial_overhead_pct": per_trial,
            "to_parent_run_s": s["to_parent_run_s"],
            "to_first_run_s": s["to_first_run_s"],
            "after_last_run_s": s["after_last_run_s"],
            "first_trial_workers_s": s["trial_workers"],
            "in_sweep_trial_s": runs,
            "gaps_s": gaps,
            "sweep_driver_peak_rss_mb": s["driver_peak_rss_mb"],
            "startup_parts_s": {k: v for k, v in account.items() if k.endswith("_s")},
            "bare_process_peak_rss_mb": max(r["peak_rss_mb"] for r in b),
        },
    }
