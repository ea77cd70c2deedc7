"""make bench / make bench-quick: measure what kdsweep exists for, as ratios against baselines
measured in the same run, and write docs/benchmarks.md and docs/benchmarks.json.

    python -m bench [--quick] [--only NAME[,NAME]] [--no-real-data] [--out DIR] [--work DIR]

--quick is the small version the test suite smoke-runs: it checks that every figure can be
measured, not what it is (its numbers mean nothing). --only re-measures some figures and
replaces just those in an existing benchmarks.json/.md (each figure keeps its own date). Figures: orchestration, teacher_reuse,
tracking_overhead, input_pipeline, report_scaling, latency, memory, real_data, gpu, xlite_study, mil_study, brats_study, kd_cost.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import FULL, QUICK, REPO, Context
from bench.document import machine, render

FIGURES = (
    "orchestration",
    "teacher_reuse",
    "tracking_overhead",
    "input_pipeline",
    "report_scaling",
    "latency",
    "memory",
    "real_data",
    "gpu",
    "xlite_study",
    "mil_study",
    "brats_study",
    "kd_cost",
)
TITLES = {
    "orchestration": "Orchestration overhead",
    "teacher_reuse": "Teacher reuse",
    "tracking_overhead": "Tracking overhead",
    "input_pipeline": "Input pipeline",
    "report_scaling": "Report scaling",
    "latency": "Latency stability",
    "memory": "Memory",
    "real_data": "Real data (MedPix-2.0)",
    "gpu": "GPU packing",
    "xlite_study": "X-Lite study wall time",
    "mil_study": "MIL loss study wall time and memory",
    "brats_study": "BraTS models study (3 models, ensemble) wall time and memory",
    "kd_cost": "KD at the cost of training alone (teacher-output cache)",
}


def _dataset(ctx: Context) -> None:
    from pipeline.data.synth import generate

    root = Path(ctx.data_root)
    marker = root / ".done"
    want = f"{ctx.scale.n_train}/{ctx.scale.n_eval}/{ctx.scale.image_size}"
    if marker.is_file() and marker.read_text() == want:
        return
    shutil.rmtree(root, ignore_errors=True)
    n = {"train": ctx.scale.n_train, "dev": ctx.scale.n_eval, "test": ctx.scale.n_eval}
    generate("wound", root, n, image_size=ctx.scale.image_size, seed=0)
    marker.write_text(want)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="the small smoke version (numbers mean nothing)")
    p.add_argument("--only", default="", help="comma-separated figure names (default: all)")
    p.add_argument(
        "--no-real-data",
        action="store_true",
        help="skip the MedPix study (about 40 min on 2 cores: figure 8)",
    )
    p.add_argument("--out", type=Path, default=None, help="where benchmarks.md/.json go")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default data/bench[-quick])")
    a = p.parse_args(argv)
    scale = QUICK if a.quick else FULL
    out = a.out or (REPO / ("data/bench-quick" if a.quick else "docs"))
    work = (a.work or REPO / "data" / f"bench-{scale.name}").resolve()
    only = [f.strip() for f in a.only.split(",") if f.strip()] or list(FIGURES)
    unknown = sorted(set(only) - set(FIGURES))
    if unknown:
        print(
            f"error: --only: unknown figure(s) {unknown}; expected some of {', '.join(FIGURES)}",
            file=sys.stderr,
        )
        return 2
    shutil.rmtree(work, ignore_errors=True)  # every run measures from empty stores
    work.mkdir(parents=True)
    os.environ["KDSWEEP_CACHE"] = str(work / "cache")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ctx = Context(
        scale, str(work), str(work.parent / f"bench-data-{scale.name}"), not a.no_real_data and not a.quick
    )
    _dataset(ctx)
    info = machine()
    command = "make bench-quick" if a.quick else "make bench" + (" REAL_DATA=0" if a.no_real_data else "")
    print(
        f"kdsweep bench ({scale.name}) on {info['cores']} cores, {info['device']}; work folder {work}",
        flush=True,
    )
    start = time.perf_counter()

    def one(name: str, driver_mb: float | None = None) -> dict:
        t0 = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        try:
            r = module.measure(ctx, driver_mb) if name == "memory" else module.measure(ctx)
        except Exception as e:  # a figure that cannot be measured is reported as such, not hidden
            traceback.print_exc()
            r = {
                "value": None,
                "met": False,
                "target": "",
                "baseline": "",
                "measured": "",
                "why": f"the measurement failed: {type(e).__name__}: {str(e).strip().splitlines()[0][:300]}",
                "details": {},
            }
        r = {
            "figure": FIGURES.index(name) + 1,
            "name": name,
            "title": TITLES[name],
            "command": f"python -m bench --only {name}" + (" --quick" if a.quick else ""),
            "seconds": time.perf_counter() - t0,
            **r,
        }
        shown = "n/a" if r["value"] is None else f"{r['value']:.3f}{r.get('unit', '')}"
        status = {True: "met", False: "MISSED", None: "-"}[r["met"]]
        print(
            f"- {TITLES[name]}: {shown}  target {r['target']}: {status}  ({r['seconds']:.0f} s)", flush=True
        )
        return r

    def driver(r: dict | None) -> float | None:  # memory reports the orchestration sweep's driver
        return (r or {}).get("details", {}).get("sweep_driver_peak_rss_mb")

    # Full: one figure at a time, so no measurement shares the machine with another. Quick
    # (correctness only): two at a time, which halves the smoke run's start-up bound wall time.
    with ThreadPoolExecutor(max_workers=2 if a.quick else 1) as pool:
        futures = {n: pool.submit(one, n) for n in only if n != "memory"} if a.quick else {}
        done: dict[str, dict] = {}
        for name in only:
            if name == "memory":
                orch = (
                    futures["orchestration"].result()
                    if "orchestration" in futures
                    else done.get("orchestration")
                )
                done[name] = one(name, driver(orch))
            else:
                done[name] = futures[name].result() if name in futures else one(name)
    results = [done[n] for n in only]
    total = time.perf_counter() - start
    for r in results:
        r["date"] = info["date"]
    previous, remeasured = out / "benchmarks.json", []
    if a.only and previous.is_file():  # re-measured figures replace theirs; the others stay
        old = json.loads(previous.read_text())
        if old.get("scale") == scale.name:
            mine = {r["name"] for r in results}
            kept = [r for r in old["figures"] if r["name"] not in mine]
            results = sorted(kept + results, key=lambda r: r["figure"])
            total = old.get("total_s", total)  # the run the header names
            command = old["command"]
            # the header stays the run the other figures came from; each re-measured figure says
            # its own command, date and commit (a figure re-measured again replaces its line)
            later = [x for x in old.get("remeasured", []) if x["name"] not in mine]
            now = [{"name": n, "date": info["date"], "commit": info["git_commit"]} for n in sorted(mine)]
            info, remeasured = old["machine"], later + now
    report = {"command": command, "scale": scale.name, "machine": info, "total_s": total, "figures": results}
    if remeasured:
        report["remeasured"] = remeasured
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out / "benchmarks.md").write_text(render(report))
    print(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks.json'} ({total / 60:.1f} min)")
    failed = [r["name"] for r in results if r["value"] is None and r["met"] is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
