"""Figure 2, teacher reuse: a loss study of N students against the research code's two-stage
script, which trains a teacher for every trial.

Both arms run the same N KD losses one after the other in one process (so the figure isolates
teacher reuse; the sweep's own overhead is figure 1), each in its own empty MLflow store:
  - reuse: the first trial trains the teacher, the others find it in MLflow (by teacher hash)
    and load its checkpoint, as every trial of a sweep does;
  - per trial: every trial retrains its teacher (`retrain_teacher=True`).
Figure: (time per trial arm / time reuse arm) / N(T+S)/(T+NS), with T and S the mean teacher
and student times measured in the per-trial arm: how much of the theoretical speed-up we get.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import Context, Timer, child, cores, quiet, set_threads

LOSSES = ("vanilla", "combined", "crd", "rkd", "mmd")


def arm(ctx: Context, losses: list[str], retrain: bool, threads: int) -> dict:
    from pipeline.config.loader import load_experiment
    from pipeline.training.run import ensure_teacher, prepare, run_student

    set_threads(threads)
    trials = []
    with Timer() as total:
        for loss in losses:
            with Timer() as t_all:
                cfg = load_experiment("default", [*ctx.overrides(), "seed=7", f"loss.name={loss}"])
                data, device = prepare(cfg, quiet)
                with Timer() as t_teacher:
                    teacher, run_id, reused, _ = ensure_teacher(cfg, data, device, retrain, say=quiet)
                run_student(cfg, data, device, teacher, run_id, say=quiet)
            trials.append(
                {"loss": loss, "s": t_all.seconds, "teacher_s": t_teacher.seconds, "reused": reused}
            )
    return {"total_s": total.seconds, "trials": trials}


def measure(ctx: Context) -> dict:
    losses = list(LOSSES[: ctx.scale.reuse_students])
    n = len(losses)
    threads = cores()
    stores = {k: f"sqlite:///{Path(ctx.work) / 'teacher-reuse' / k / 'mlflow.db'}" for k in ("reuse", "each")}
    for uri in stores.values():
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    reuse, each = (
        child(
            ctx,
            "teacher_reuse:arm",
            {"MLFLOW_TRACKING_URI": stores[k]},
            losses=losses,
            retrain=k == "each",
            threads=threads,
        )
        for k in ("reuse", "each")
    )
    reused = sum(t["reused"] for t in reuse["trials"])
    if reused != n - 1:
        raise RuntimeError(f"teacher reuse: {reused} of {n - 1} trials reused the teacher")
    t_teacher = sum(t["teacher_s"] for t in each["trials"]) / n
    t_student = sum(t["s"] - t["teacher_s"] for t in each["trials"]) / n
    theoretical = n * (t_teacher + t_student) / (t_teacher + n * t_student)
    actual = each["total_s"] / reuse["total_s"]
    ratio = actual / theoretical
    met = ratio >= 0.9
    load = sum(t["teacher_s"] for t in reuse["trials"][1:]) / max(n - 1, 1)
    why = ""
    if not met:
        why = (
            f"Finding and loading the teacher from MLflow costs {load:.2f} s per trial against a "
            f"{t_student:.1f} s student; the rest is run-to-run noise on a shared machine. Caching the "
            "loaded teacher in the worker process would remove the per-trial load."
        )
    return {
        "value": ratio,
        "met": met,
        "target": ">= 0.9 of the theoretical speed-up",
        "baseline": f"a teacher trained per trial (two-stage script): {each['total_s']:.1f} s for {n} trials "
        f"(teacher T = {t_teacher:.1f} s, student S = {t_student:.1f} s)",
        "measured": f"one teacher reused by {n} students: {reuse['total_s']:.1f} s; speed-up {actual:.2f}x "
        f"against the theoretical N(T+S)/(T+NS) = {theoretical:.2f}x",
        "why": why,
        "details": {
            "students": n,
            "threads": threads,
            "teacher_s": t_teacher,
            "student_s": t_student,
            "teacher_lookup_and_load_s": load,
            "speedup": actual,
            "theoretical_speedup": theoretical,
            "reuse_arm": reuse["trials"],
            "per_trial_arm": each["trials"],
        },
    }
