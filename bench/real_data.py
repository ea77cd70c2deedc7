"""Figure 8, real data: the loss study (sweeps/loss.yaml, the papers' presets), then the group's
loss study (sweeps/loss-group.yaml, their definitions of vanilla and combined) in the same MLflow
store, so one teacher serves both, on the real MedPix-2.0 copy with the `pretrained-cpu` profile
(ImageNet EfficientNet-Lite2 -> Lite0 image backbones from PyPI wheels, pretrained MiniLM-L6 ->
its first 3 layers for the text, sized to train on 2 CPU cores in about 45 minutes), beside the
numbers the research group published (seed note 000, MedPix table; their small KD students over
5 seeds) with larger pretrained backbones on a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.common import SHARED_MEDPIX, Context, Timer, child, cores, quiet

# seed note 000, "Test Performance Overview (MedPix)": (modality F1, location F1) of the group's
# own loss definitions: their `vanilla`/`combined` are kdsweep's `group_vanilla`/`group_combined`
# (shared/reference/README.md table A), so the published pair sits beside those rows.
PUBLISHED = {
    "group_vanilla": (0.9750, 0.7825),
    "group_combined": (0.9850, 0.8414),
    "crd": (0.4911, 0.1718),
    "mmd": (0.5313, 0.1331),
    "rkd": (0.7624, 0.1496),
}
# The group's own small KD student (MobileViT-XXS + BERT-mini, 13.1 M, tuned `combined`):
# mean and std of test avg F1 over seeds 42-46 (reference README), the scale 0.89 comes from.
SMALL_STUDENT = (0.8928, 0.0119)
# The studies of the figure, in this order in one MLflow store: the papers' presets, then the
# group's definitions; the second finds the first's teacher by its config hash and reuses it.
STUDIES = ("loss", "loss-group")
DEFINITION = {"none": "no KD", "group_vanilla": "group's", "group_combined": "group's"}
BACKBONES = (
    "Published: teacher ViT-L/16 + Bio_ClinicalBERT, student ViT-B/16 + DistilBERT, all pretrained, "
    "224 px, on a GPU. Here (profile `pretrained-cpu`): teacher EfficientNet-Lite2 (ImageNet) + "
    "all-MiniLM-L6-v2 (pretrained), {teacher_m:.1f} M parameters; student EfficientNet-Lite0 "
    "(ImageNet) + all-MiniLM-L6-v2 cut to its first 3 layers (pretrained, MiniLM's tokenizer), "
    "{student_m:.1f} M parameters ({ratio:.0%} of the teacher's; 11.7 M of them are MiniLM's "
    "30,522 x 384 token embeddings, so the student is small in compute, not in size); 112 px (the "
    "small copy's images are at most 128 px), teacher 5 and students 3 epochs at batch 16, each stage's "
    "rate decaying from 5e-4 to 0 on a cosine, on {cores} CPU cores."
)


TARGET_F1, TARGET_MIN = 0.89, 45  # the best KD student's test avg F1 (above `none`), the figure's wall time
SCRATCH = 0.765  # the loss study with every encoder trained from scratch (figure 8 before issue 14)
# figure 8 before the pretrained student text encoder: best KD student `combined`, its student
# text a 2-layer, 64-wide DistilBERT from scratch (test avg F1, location F1)
SCRATCH_TEXT = (0.828, 0.686)
# figure 8 with MiniLM's first 3 layers in the student at a constant rate (2026-12-04): teacher 3,
# students 2 epochs, batch 16 at 3e-4 (best KD student crd, the no-KD student, their teacher), and
# one try at batch 8 and 2.5e-4 stopped after the paper presets (best KD combined): the teacher's
# dev F1 jumped between epochs at a constant rate (0.74 / 0.81 / 0.79 / 0.88 / 0.78 over 6 epochs)
CONSTANT_LR = ((0.879, 0.872, 0.863), (0.885, 0.915, 0.869))
# the test split has 200 images: one seed's avg F1 moves by about 0.02 between equally good models
# (the binomial standard error of a 0.9 accuracy on 200 samples is 0.021)
NOISE = 0.02


def medpix_root() -> Path | None:
    root = Path(os.environ.get("MEDPIX_ROOT", SHARED_MEDPIX))
    return root if (root / "splitted_dataset").is_dir() else None


def _metrics(run_id: str) -> dict:
    from pipeline import tracking

    m = tracking.get_run(run_id).data.metrics
    return {
        "modality_f1": m.get("test/modality/f1"),
        "location_f1": m.get("test/location/f1"),
        "avg_f1": m.get("test/avg_f1"),
        "params_m": m["params"] / 1e6 if m.get("params") else None,
        "latency_ms": m.get("latency_ms"),
    }


def _without_none(name: str, work: Path) -> str:
    """The study `name` without its `none` trial, when an earlier study of the figure ran it: a
    no-KD student reads no alpha, temperature or beta, so loss-group's `none` would be the loss
    study's again (its overrides change only those) at the cost of a whole wave of students."""
    import yaml

    from pipeline.config.studyfile import sweeps_dir

    raw = yaml.safe_load((sweeps_dir() / f"{name}.yaml").read_text())
    raw["space"]["loss.name"] = [loss for loss in raw["space"]["loss.name"] if loss != "none"]
    path = work / f"{name}.yaml"  # same stem: the sweep is still named after the study
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def _sweep(name: str, study_path: str, args: list[str]) -> dict:
    """One study of the figure: its wall time, each trial's test F1s and the students' teacher."""
    from pipeline import tracking
    from pipeline.sweeps.sweep import run_sweep

    with Timer() as t:
        result = run_sweep(study_path, args, say=quiet)
    rows, teacher = [], {}
    for r in result.rows:
        if not r.run_id:
            rows.append({"study": name, "label": r.label, "status": r.status, "error": r.error})
            continue
        tags = tracking.get_run(r.run_id).data.tags
        if not teacher and tags.get("teacher_run_id"):  # the students' teacher, for scale
            teacher = _metrics(tags["teacher_run_id"])
        rows.append({"study": name, "loss": tags.get("loss"), "status": r.status, **_metrics(r.run_id)})
    return {
        "study": name,
        "sweep_s": t.seconds,
        "rows": rows,
        "teacher": teacher,
        "teachers_trained": result.teachers_trained,
    }


def study(ctx: Context, root: str, profile: str = "pretrained-cpu", extra: tuple[str, ...] = ()) -> dict:
    args = ["dataset=medpix", f"profile={profile}", f"dataset.root={root}", *extra]
    work = Path(ctx.work) / "real-data"
    paths = [STUDIES[0]] + [_without_none(name, work) for name in STUDIES[1:]]
    sweeps = [_sweep(name, path, args) for name, path in zip(STUDIES, paths, strict=True)]
    return {
        "sweep_s": sum(s["sweep_s"] for s in sweeps),
        "rows": [row for s in sweeps for row in s["rows"]],
        "teacher": next((s["teacher"] for s in sweeps if s["teacher"]), {}),
        "studies": [{k: s[k] for k in ("study", "sweep_s", "teachers_trained")} for s in sweeps],
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
    env = {"MLFLOW_TRACKING_URI": store, "MINILM_DIR": _minilm()}
    # twice the 45-minute target: a slow run is reported as missed, not killed
    r = child(ctx, "real_data:study", env, timeout=2 * TARGET_MIN * 60, root=str(root))
    return summarize(r, str(root))


def _gap(best: dict, none: dict, teacher: dict, minutes: float) -> str:
    """What was tried, what it measured, and where the rest of the gap to the target is."""
    text = (
        f"Tried: every encoder from scratch reached {SCRATCH:.3f} (combined); ImageNet "
        f"EfficientNet-Lite weights with the pretrained MiniLM-L6 in the teacher only (student text: "
        f"a 2-layer, 64-wide DistilBERT from scratch) {SCRATCH_TEXT[0]:.3f} (combined, location "
        f"{SCRATCH_TEXT[1]:.3f}). With MiniLM-L6's first 3 pretrained layers in the student at a "
        f"constant rate: best KD student {CONSTANT_LR[0][0]:.3f}, no-KD {CONSTANT_LR[0][1]:.3f}, teacher "
        f"{CONSTANT_LR[0][2]:.3f} (batch 16); {CONSTANT_LR[1][0]:.3f}, {CONSTANT_LR[1][1]:.3f} and "
        f"{CONSTANT_LR[1][2]:.3f} at batch 8 (the teacher's dev F1 jumped between epochs). Now each stage "
        f"decays its rate on a cosine and the teacher trains 5 epochs: the best KD student ({best['loss']}) reaches {best['avg_f1']:.3f} (modality "
        f"{best['modality_f1']:.3f}, location {best['location_f1']:.3f}), the no-KD student "
        f"{none['avg_f1']:.3f} (location {none['location_f1']:.3f})"
    )
    if teacher.get("avg_f1") is not None:
        text += (
            f", their teacher {teacher['avg_f1']:.3f} (modality {teacher['modality_f1']:.3f}, "
            f"location {teacher['location_f1']:.3f})"
        )
    text += f"; the figure took {minutes:.1f} min."
    if best["avg_f1"] < TARGET_F1:
        weaker = "location" if best["location_f1"] < best["modality_f1"] else "modality"
        text += (
            f" Short of {TARGET_F1}: the gap is in {weaker} F1. More epochs or larger images cost "
            f"the {TARGET_MIN}-minute budget (the copy's images are at most 128 px)."
        )
    if best["avg_f1"] <= none["avg_f1"]:
        text += (
            " No KD loss beats the no-KD student: with a pretrained text encoder of its own the "
            "student learns the text-driven location about as well alone, from a teacher "
            "hardly better than itself."
        )
    if minutes > TARGET_MIN:
        text += f" Over the {TARGET_MIN}-minute budget: fewer epochs or smaller images would fit it."
    return text


def _noise(diff: float) -> str:
    """What one seed's difference of test avg F1 says (NOISE: 200 test images)."""
    if abs(diff) < NOISE:
        return f"a difference of {diff:+.3f}, within noise (one seed, 200 test images: about {NOISE})"
    return f"a difference of {diff:+.3f}, above the about {NOISE} of one seed on 200 test images"


def _by_loss(rows: list[dict]) -> dict[str, dict]:
    """One row per loss, best avg F1 first (a loss two studies ran: the first study's row)."""
    by_loss: dict[str, dict] = {}
    for row in rows:
        if row.get("loss") and row["loss"] not in by_loss:
            by_loss[row["loss"]] = row
    return dict(sorted(by_loss.items(), key=lambda kv: -(kv[1]["avg_f1"] or 0)))


def _table(by_loss: dict[str, dict], teacher: dict) -> list[list[str]]:
    table = [
        ["Loss", "Definition", "Modality F1", "Location F1", "Avg F1"]
        + ["Published modality F1", "Published location F1", "Published avg F1"]
    ]
    for loss, row in by_loss.items():
        pub = PUBLISHED.get(loss)
        published = [f"{pub[0]:.3f}", f"{pub[1]:.3f}", f"{sum(pub) / 2:.3f}"] if pub else ["-"] * 3
        measured = [f"{row[k]:.3f}" for k in ("modality_f1", "location_f1", "avg_f1")]
        table.append([loss, DEFINITION.get(loss, "paper preset"), *measured, *published])
    if teacher.get("avg_f1") is not None:
        measured = [f"{teacher[k]:.3f}" for k in ("modality_f1", "location_f1", "avg_f1")]
        table.append(["(teacher)", "-", *measured, "-", "-", "-"])
    mean, std = SMALL_STUDENT
    table.append(
        ["(published small KD student: MobileViT-XXS + BERT-mini, 13.1 M, 5 seeds)", "group's, tuned"]
        + ["-"] * 5
        + [f"{mean:.3f} +- {std:.3f}"]
    )
    return table


def _unpublished(loss: str) -> str:
    if f"group_{loss}" in PUBLISHED:  # the group published its own definition of this loss
        return f" (the published {loss} is the group's definition: see group_{loss})"
    return " (not in the published table)"


def summarize(r: dict, root: str) -> dict:
    by_loss = _by_loss(r["rows"])
    lines = []
    for loss, row in by_loss.items():
        pub = PUBLISHED.get(loss)
        lines.append(
            f"{loss}: modality {row['modality_f1']:.3f}, location {row['location_f1']:.3f}"
            + (f" (published {pub[0]:.3f}, {pub[1]:.3f})" if pub else _unpublished(loss))
        )
    teacher = r.get("teacher") or {}
    if teacher.get("avg_f1") is not None:
        lines.append(
            f"their teacher: modality {teacher['modality_f1']:.3f}, location {teacher['location_f1']:.3f}"
        )
    kd = {loss: row for loss, row in by_loss.items() if loss != "none"}
    best_loss = next(iter(kd))
    best, none = {**kd[best_loss], "loss": best_loss}, by_loss["none"]
    minutes = r["sweep_s"] / 60
    met = best["avg_f1"] >= TARGET_F1 and best["avg_f1"] > none["avg_f1"] and minutes <= TARGET_MIN
    studies = ", ".join(
        f"{s['study']} {s['sweep_s'] / 60:.1f} min ({s['teachers_trained']} teacher(s) trained)"
        for s in r["studies"]
    )
    student_m = next((row["params_m"] for row in by_loss.values() if row.get("params_m")), 0.0)
    teacher_m = teacher.get("params_m") or 0.0
    return {
        "value": best["avg_f1"],
        "met": met,
        "target": f"best KD student's test avg F1 >= {TARGET_F1} and above the no-KD student's, "
        f"in <= {TARGET_MIN} min on 2 CPU cores; reported beside the published numbers "
        "(different backbones: see below)",
        "baseline": "published (seed 000, the group's definitions): combined modality F1 0.985, "
        "location F1 0.841; vanilla 0.975, 0.783; the group's small KD students (MobileViT-XXS + "
        f"BERT-mini, seeds 42-46) test avg F1 {SMALL_STUDENT[0]:.3f} +- {SMALL_STUDENT[1]:.3f}",
        "measured": "; ".join(lines)
        + f". Best KD student {best_loss} {best['avg_f1']:.3f} against no-KD {none['avg_f1']:.3f}: "
        + _noise(best["avg_f1"] - none["avg_f1"])
        + f". Whole figure {minutes:.1f} min: {studies}. Before (student text: a 2-layer DistilBERT "
        f"from scratch): best KD student {SCRATCH_TEXT[0]:.3f}, location {SCRATCH_TEXT[1]:.3f}",
        "why": "" if met else _gap(best, none, teacher, minutes),
        "details": {
            "table": _table(by_loss, teacher),
            "rows": r["rows"],
            "studies": r["studies"],
            "sweep_s": r["sweep_s"],
            "published": PUBLISHED,
            "published_small_student": SMALL_STUDENT,
            "backbones": BACKBONES.format(
                cores=cores(),
                teacher_m=teacher_m,
                student_m=student_m,
                ratio=student_m / teacher_m if teacher_m else 0.0,
            ),
            "root": root,
            "teacher": teacher,
        },
    }
