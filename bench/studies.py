"""Figures 10, 11 and 12, whole studies as a user runs them: `make sweep-xlite`, `make sweep-mil`
and `make sweep-brats`.

Each: a fresh synthetic dataset (the generator's default size), then one `python -m pipeline
sweep` child process into an empty MLflow store with the tiny profile, reports included. The
figure is the wall time against the issue's budget (15 minutes on 2 CPU cores); absolute, so it
names the machine. The per-phase split comes from the runs' start and end times, and the peak
memory of a trial from the runs' `peak_rss_mb` (a worker's high-water mark: Ray reuses workers,
so it bounds each trial from above). Quick mode skips them: tests/test_xlite_sweep.py and
tests/test_mil_sweep.py smoke-run the same machinery.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.common import REPO, Context, Timer, cores

TARGET_MIN = 15.0


def _runs(store: str) -> tuple[dict[str, float], float, dict[str, float]]:
    """(seconds from first start to last end per phase, max peak_rss_mb over the runs, and per
    phase: the model of each phase of the BraTS study)."""
    from pipeline import tracking

    c = tracking.client_at(store)
    exps = [e.experiment_id for e in c.search_experiments()]
    spans: dict[str, list[int]] = {}
    peak = 0.0
    peaks: dict[str, float] = {}
    for r in c.search_runs(exps, "tags.stage != 'sweep'", max_results=1000):
        phase = r.data.tags.get("phase") or r.data.tags.get("stage", "?")  # ensemble runs: "ensemble"
        end = r.info.end_time or r.info.start_time
        s = spans.setdefault(phase, [r.info.start_time, end])
        s[0], s[1] = min(s[0], r.info.start_time), max(s[1], end)
        peak = max(peak, r.data.metrics.get("peak_rss_mb", 0.0))
        if "peak_rss_mb" in r.data.metrics:
            peaks[phase] = max(peaks.get(phase, 0.0), r.data.metrics["peak_rss_mb"])
    return {p: (e - s) / 1000 for p, (s, e) in spans.items()}, peak, peaks


def measure_study(
    ctx: Context,
    study: str,
    dataset: str,
    profile: str,
    synth: str,
    make: str,
    target_min: float = TARGET_MIN,
) -> dict:
    if ctx.scale.name == "quick":
        note = "skipped in quick mode (the test suite smoke-runs the same machinery)"
        return {"value": None, "met": None, "target": f"<= {target_min:.0f} min", "baseline": "",
                "measured": note, "why": "", "details": {"skipped": note}}  # fmt: skip
    work = Path(ctx.work) / study
    work.mkdir(parents=True, exist_ok=True)
    root = work / dataset
    subprocess.run([sys.executable, "-m", "pipeline.synth", synth, "--out", str(root)], check=True, cwd=REPO)
    store = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "KDSWEEP_CACHE": str(work / "cache")}
    cmd = [sys.executable, "-m", "pipeline", "sweep", f"sweeps/{study}.yaml", "--dataset", dataset,
           "--profile", profile, f"dataset.root={root}", "--docs", str(work / "docs")]  # fmt: skip
    with Timer() as t:
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    (work / "sweep.log").write_text(done.stdout + done.stderr)
    minutes = t.seconds / 60
    phases, peak, peaks = _runs(store)
    return {
        "value": minutes,
        "unit": " min",
        "met": done.returncode == 0 and minutes <= target_min,
        "target": f"<= {target_min:.0f} min on 2 CPU cores (this machine: {cores()} cores)",
        "baseline": f"the issue's budget for `{make}` (tiny profile, synthetic data)",
        "measured": f"{minutes:.1f} min wall for the whole plan, exit {done.returncode}; peak RSS of a "
        f"trial <= {peak:.0f} MB; per phase (s): "
        + ", ".join(f"{p} {s:.0f}" for p, s in phases.items())
        + "; peak RSS of a trial per phase (MB): "
        + ", ".join(f"{p} {m:.0f}" for p, m in peaks.items()),
        "why": "" if done.returncode == 0 else f"the sweep exited {done.returncode}: {done.stderr[-300:]}",
        "details": {
            "seconds": t.seconds,
            "returncode": done.returncode,
            "phases_s": phases,
            "trial_peak_rss_mb": peak,
            "trial_peak_rss_mb_per_phase": peaks,
        },  # fmt: skip
    }
