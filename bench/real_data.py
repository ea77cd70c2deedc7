"""Figure 8, real data: the loss study (sweeps/loss.yaml) on the real MedPix-2.0 copy with the
`pretrained-cpu` profile (ImageNet EfficientNet-Lite2 -> Lite0 image backbones from PyPI wheels
and a pretrained MiniLM-L6 text encoder in the teacher, sized to train on 2 CPU cores in about
45 minutes), beside the numbers the research group published (seed note 000, MedPix table)
with much larger, pretrained backbones on a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.common import SHARED_MEDPIX, Context, Timer, child, cores, quiet

# seed note 000, "Test Performance Overview (MedPix)": (modality F1, location F1)
PUBLISHED = {
    "vanilla": (0.9750, 0.7825),
    "combined": (0.9850, 0.8414),
    "crd": (0.4911, 0.1718),
    "mmd": (0.5313, 0.1331),
    "rkd": (0.7624, 0.1496),
}
BACKBONES = (
    "Published: teacher ViT-L/16 + Bio_ClinicalBERT, student ViT-B/16 + DistilBERT, all pretrained, "
    "224 px, on a GPU. Here (profile `pretrained-cpu`): teacher EfficientNet-Lite2 (ImageNet, 4.8 M) "
    "+ all-MiniLM-L6-v2 (pretrained, 22 M), student EfficientNet-Lite0 (ImageNet, 3.4 M) + "
    "DistilBERT (2 layers, 64 wide, from scratch), 112 px (the small copy's images are at most "
    "128 px), 3 + 3 epochs, on {cores} CPU cores."
)


TARGET_F1, TARGET_MIN = 0.85, 45  # issue 14: the best loss's test avg F1, the study's wall time
SCRATCH = 0.765  # the same study with every encoder trained from scratch (figure 8 before issue 14)


def medpix_root() -> Path | None:
    root = Path(os.environ.get("MEDPIX_ROOT", SHARED_MEDPIX))
    return root if (root / "splitted_dataset").is_dir() else None


def study(ctx: Context, root: str, profile: str = "pretrained-cpu", extra: tuple[str, ...] = ()) -> dict:
    from pipeline import tracking
    from pipeline.sweeps.sweep import run_sweep

    with Timer() as t:
        result = run_sweep(
            "loss", ["dataset=medpix", f"profile={profile}", f"dataset.root={root}", *extra], say=quiet
        )
    rows, teacher = [], {}
    for r in result.rows:
        if not r.run_id:
            rows.append({"label": r.label, "status": r.status, "error": r.error})
            continue
        run = tracking.get_run(r.run_id)
        m = run.data.metrics
        if not teacher and run.data.tags.get("teacher_run_id"):  # the students' teacher, for scale
            t_m = tracking.get_run(run.data.tags["teacher_run_id"]).data.metrics
            teacher = {
                "modality_f1": t_m.get("test/modality/f1"),
                "location_f1": t_m.get("test/location/f1"),
                "avg_f1": t_m.get("test/avg_f1"),
            }
        rows.append(
            {
                "loss": run.data.tags.get("loss"),
                "status": r.status,
                "modality_f1": m.get("test/modality/f1"),
                "location_f1": m.get("test/location/f1"),
                "avg_f1": m.get("test/avg_f1"),
                "latency_ms": m.get("latency_ms"),
            }
        )
    return {
        "sweep_s": t.seconds,
        "rows": rows,
        "teacher": teacher,
        "teachers_trained": result.teachers_trained,
    }


def measure(ctx: Context) -> dict:
    root = medpix_root()
    if not ctx.real_data or root is None:
        why = "skipped: `make bench REAL_DATA=0`" if ctx.real_data is False else ""
        note = why or f"skipped: no MedPix-2.0 copy at {SHARED_MEDPIX} (set MEDPIX_ROOT)"
        return {
            "value": None,
            "met": None,
            "target": "reported beside the published numbers",
            "baseline": "",
            "measured": note,
            "why": "",
            "details": {"skipped": note},
        }
    from bench.memory import _minilm

    store = f"sqlite:///{Path(ctx.work) / 'real-data' / 'mlflow.db'}"
    Path(ctx.work, "real-data").mkdir(parents=True, exist_ok=True)
    r = child(ctx, "real_data:study", {"MLFLOW_TRACKING_URI": store, "MINILM_DIR": _minilm()}, root=str(root))
    return summarize(r, str(root))


def _gap(best: dict, teacher: dict, minutes: float) -> str:
    """What was tried and where the gap to the target comes from, read off the measured F1s."""
    text = (
        f"Tried: the same study with every encoder from scratch reached {SCRATCH:.3f} (combined); with "
        f"ImageNet EfficientNet-Lite weights (Lite2 teacher, Lite0 student) and the pretrained "
        f"MiniLM-L6 in the teacher the best loss ({best['loss']}) reaches {best['avg_f1']:.3f}."
    )
    if teacher.get("avg_f1") is not None:
        text += (
            f" The gap is in location: the students' modality F1 ({best['modality_f1']:.3f}) matches "
            f"or beats their teacher's ({teacher['modality_f1']:.3f}), their location F1 "
            f"({best['location_f1']:.3f}) stays well under the teacher's ({teacher['location_f1']:.3f}, "
            f"avg {teacher['avg_f1']:.3f}). The teacher reads the case text with a pretrained "
            "MiniLM-L6; the student's text encoder is a 2-layer, 64-wide DistilBERT trained from "
            "scratch on the ~1,650 training descriptions, and the images are 112 px (the small copy's are at most "
            "128 px) for 3 + 3 epochs. A pretrained student text encoder is the next thing to try; "
            "more epochs or larger images would cost the 45-minute budget"
        )
    return text + f" (this study took {minutes:.1f} min)."


def summarize(r: dict, root: str) -> dict:
    by_loss = {row["loss"]: row for row in r["rows"] if row.get("loss")}
    lines = []
    for loss, row in sorted(by_loss.items(), key=lambda kv: -(kv[1]["avg_f1"] or 0)):
        pub = PUBLISHED.get(loss)
        lines.append(
            f"{loss}: modality {row['modality_f1']:.3f}, location {row['location_f1']:.3f}"
            + (f" (published {pub[0]:.3f}, {pub[1]:.3f})" if pub else " (not in the published table)")
        )
    table = [
        ["Loss", "Modality F1", "Location F1", "Avg F1", "Published modality F1", "Published location F1"]
    ]
    for loss, row in sorted(by_loss.items(), key=lambda kv: -(kv[1]["avg_f1"] or 0)):
        pub = PUBLISHED.get(loss, (None, None))
        table.append(
            [loss, f"{row['modality_f1']:.3f}", f"{row['location_f1']:.3f}", f"{row['avg_f1']:.3f}"]
            + [f"{v:.3f}" if v is not None else "-" for v in pub]
        )
    teacher = r.get("teacher") or {}
    if teacher.get("avg_f1") is not None:
        table.append(
            ["(teacher)"]
            + [f"{teacher[k]:.3f}" for k in ("modality_f1", "location_f1", "avg_f1")]
            + ["-", "-"]
        )
        lines.append(
            f"their teacher: modality {teacher['modality_f1']:.3f}, location {teacher['location_f1']:.3f}"
        )
    best = max(by_loss.values(), key=lambda row: row["avg_f1"] or 0)
    best = {**best, "loss": max(by_loss, key=lambda k: by_loss[k]["avg_f1"] or 0)}
    minutes = r["sweep_s"] / 60
    met = (best["avg_f1"] or 0) >= TARGET_F1 and minutes <= TARGET_MIN
    return {
        "value": best["avg_f1"],
        "met": met,
        "target": f"best loss's test avg F1 >= {TARGET_F1} in <= {TARGET_MIN} min on 2 CPU cores; "
        "reported beside the published numbers (different backbones: see below)",
        "baseline": "published (seed 000): combined modality F1 0.985, location F1 0.841; vanilla 0.975, 0.783",
        "measured": "; ".join(lines) + f". Whole study {minutes:.1f} min",
        "why": "" if met else _gap(best, teacher, minutes),
        "details": {
            "table": table,
            "rows": r["rows"],
            "sweep_s": r["sweep_s"],
            "published": PUBLISHED,
            "backbones": BACKBONES.format(cores=cores()),
            "root": root,
            "teacher": teacher,
        },
    }
