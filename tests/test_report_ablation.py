"""docs/ablation.md from hand-made runs whose predictions fix every verdict: a single-modality
student worse than both beyond noise, one within noise, the student chosen on dev (not on test),
and its perturbations: one that hurts, one that changes no prediction, one the student was not
scored under for want of the modality, one without its predictions file."""

from __future__ import annotations

from test_report_runs import parent, preds, student, toy_experiment

from support import sqlite_store

SEEDS = (0, 1)


def _student(
    c, exp, modalities: str, seed: int, dev: float, correct: float, perturbed: dict[str, float | None]
):
    """A student run of the ablation sweep; `perturbed`: name -> share correct under it (None:
    the metric without its predictions file)."""
    trial = student(
        c,
        exp,
        "ha",
        "vanilla",
        "cross_attention",
        (correct, correct),
        dev,
        3.0,
        correct,
        seed=seed,
        label=f"student.modalities={modalities} seed={seed}",
        extra={"student.modalities": modalities, "eval.perturbations.seed": 0},
    )
    rid = trial["run_id"]
    for name, share in perturbed.items():
        c.log_metric(rid, f"test_perturbed/{name}/avg_f1", share if share is not None else 0.5)
        if share is not None:
            c.log_text(rid, preds(share), f"predictions/perturbed/{name}.csv")
    return trial


def test_ablation_document_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
    from reports.__main__ import build

    c, exp = toy_experiment()
    both = {"captions_shuffled": 0.5, "image_noise_0.1": 0.9, "image_missing": None, "text_missing": 0.85}
    image = {"image_noise_0.1": 0.6, "image_missing": 0.5}
    text = {"captions_shuffled": 0.5, "text_missing": 0.5}
    trials = [
        t
        for s in SEEDS
        for t in (
            _student(c, exp, "both", s, 0.80 + s / 100, 0.9, both),
            _student(c, exp, "image", s, 0.60, 0.6, image),
            # the best on test, but not on dev: never the chosen one
            _student(c, exp, "text", s, 0.70, 0.95 if s else 0.9, text),
        )
    ]
    parent(c, exp, "ablation", "ablation", "ha", trials, seeds=SEEDS)
    build(tmp_path / "docs")
    text_md = (tmp_path / "docs" / "ablation.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in text_md.splitlines() if line.startswith("| ")}

    assert rows["image + text"].split("|")[4].strip() == "reference"
    assert "| < 0.001 | worse |" in rows["image only"]  # 0.6 vs 0.9 of 40 samples: beyond noise
    assert "| +0.0250 |" in rows["text only"] and "| within noise (adjusted p ≥ 0.05) |" in rows["text only"]
    assert "| p (Holm) | Verdict |" in text_md and "The 2 p-values are Holm-adjusted as one family" in text_md
    assert "Beyond noise against both modalities: image only (worse, -0.3000)." in text_md
    assert "Chosen on dev: **image + text** (dev avg F1 0.8050, seeds 0, 1" in text_md

    assert "| +0.4000 |" in rows["captions shuffled across samples"]
    assert rows["captions shuffled across samples"].rstrip(" |").endswith("hurts")
    noise = rows["Gaussian image noise, std 0.1 of the pixel range"]
    assert "| +0.0000 | [+0.0000, +0.0000] | 1.000 | no change |" in noise
    assert "| no predictions | n/a | not tested |" in rows["image missing (its embedding zeroed)"]
    assert "The 3 p-values are Holm-adjusted" in text_md  # the drops with predictions: one family
    assert "| +0.0500 |" in rows["text missing (its embedding zeroed)"]
    assert "**Hurts beyond noise: captions shuffled across samples.**" in text_md
    assert "No change at all (the same test F1 on every resample): Gaussian image noise, std 0.1" in text_md
    assert "over seeds 0, 1; 95 % interval and two-sided p from 1000 bootstrap resamples" in text_md


def test_a_single_modality_choice_shows_what_it_cannot_be_scored_under(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
    from reports.__main__ import build

    c, exp = toy_experiment()
    trials = [
        _student(c, exp, "both", 0, 0.5, 0.7, {"captions_shuffled": 0.6, "image_missing": 0.6}),
        _student(c, exp, "image", 0, 0.9, 0.8, {"image_missing": 0.5}),
    ]
    parent(c, exp, "ablation", "ablation", "ha", trials, seeds=(0,))
    build(tmp_path / "docs")
    text_md = (tmp_path / "docs" / "ablation.md").read_text()
    assert "Chosen on dev: **image only**" in text_md
    assert "| captions shuffled across samples | n/a |  |  |  | not applicable (reads no text) |" in text_md
    assert "| image missing (its embedding zeroed) | 0.5000 | +0.3000 |" in text_md
    assert (
        "| p | Verdict |" in text_md
        and "Verdict: the interval above 0, below 0, or containing it." in text_md
    )
