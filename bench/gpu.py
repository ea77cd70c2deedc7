"""GPU figures (only where CUDA is present): how many tiny student trials Ray Tune packs onto one
GPU with fractional resources (gpu: 0.25 each), the GPU's utilisation and memory while they run
(read from the trial runs' own MLflow system metrics, sampled every second: what a user sees in
the UI, not a separate measurement), and the sweep's absolute time, quoted only from a GPU.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import Context, Timer, child, quiet, write_study

FRACTION = 0.25


def packed(ctx: Context, trials: int) -> dict:
    from pipeline import tracking
    from pipeline.config.loader import load_experiment
    from pipeline.sweeps.sweep import run_sweep
    from pipeline.training.run import ensure_teacher, experiment_name, prepare

    overrides = [o for o in ctx.overrides() if o != "train.device=cpu"]
    overrides += ["train.device=cuda", "tracking.system_metrics_interval=1"]
    cfg = load_experiment("default", overrides)
    data, device = prepare(cfg, quiet)
    ensure_teacher(cfg, data, device, say=quiet)
    temps = [round(1.0 + 0.25 * i, 2) for i in range(trials)]
    study = write_study(
        Path(ctx.work) / "studies" / "gpu.yaml",
        "gpu",
        {"loss.temperature": temps},
        {"resources": {"cpu": 1, "gpu": FRACTION}},
    )
    with Timer() as t:
        result = run_sweep(str(study), overrides, say=quiet)
    runs = tracking.search(experiment_name(cfg), {"stage": "student", "sweep_hash": _sweep_hash(result)})
    spans = sorted((r.info.start_time, r.info.end_time or r.info.start_time) for r in runs)
    most = max((sum(s <= start < e for s, e in spans) for start, _ in spans), default=0)
    # the runs' system metrics: every sample of GPU 0 over all trial runs
    keys = ["system/gpu_0_utilization_percentage", "system/gpu_0_memory_usage_megabytes"]
    hist = tracking.Reader().histories([r.info.run_id for r in runs], keys)
    series = {k: [v for (_, key), pts in hist.items() if key == k for _, _, v in pts] for k in keys}
    return {
        "sweep_s": t.seconds,
        "max_running": most,
        "util": series[keys[0]],
        "memory_mb": series[keys[1]],
        "finished": sum(r.status == "FINISHED" for r in result.rows),
    }


def _sweep_hash(result) -> str:
    from pipeline import tracking

    return tracking.get_run(result.parent_run_id).data.tags["sweep_hash"]


def measure(ctx: Context) -> dict:
    import torch

    if not torch.cuda.is_available():
        note = "no GPU on this machine: not measured (run `make bench` where CUDA is present)"
        return {
            "value": None,
            "met": None,
            "target": f"{int(1 / FRACTION)} trials per GPU at gpu: {FRACTION}",
            "baseline": "",
            "measured": note,
            "why": "",
            "details": {"skipped": note},
        }
    trials = 2 * int(1 / FRACTION)
    r = child(ctx, "gpu:packed", trials=trials)
    util = r["util"]
    mean_util = sum(util) / len(util) if util else float("nan")
    met = r["max_running"] >= int(1 / FRACTION)
    return {
        "value": float(r["max_running"]),
        "unit": "",
        "met": met,
        "target": f"{int(1 / FRACTION)} trials running at once on one GPU (gpu: {FRACTION} each)",
        "baseline": f"{trials} tiny student trials, one sweep",
        "measured": f"at most {r['max_running']} trials at once; GPU utilisation mean {mean_util:.0f} % "
        f"(max {max(util, default=float('nan')):.0f} %), GPU memory at most "
        f"{max(r['memory_mb'], default=float('nan')):,.0f} MB, from the trial runs' MLflow system metrics "
        f"({len(util)} samples); the sweep took {r['sweep_s']:.1f} s",
        "why": ""
        if met
        else "fewer trials ran at once than the fractional GPU request allows: CPU "
        "slots (1 CPU per trial) limited them; more cores or a smaller CPU request pack more.",
        "details": r,
    }
