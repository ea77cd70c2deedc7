"""Test-time perturbations (eval.perturbations, pipeline/training/perturb.py): each perturbation
on its own (deterministic, shapes, inputs never written), the missing-modality hook against the
model's own fusion, the config's one-line errors, and real student runs into a sqlite store:
the saved clean test predictions are byte-for-byte those of a run without perturbations, and a
rerun logs the same perturbed predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from core.errors import ConfigError
from core.schema import PerturbationConfig
from pipeline.config.loader import load_experiment
from pipeline.training.perturb import (
    Perturbation,
    caption_source,
    missing,
    noisy_images,
    perturbed_split,
    planned,
    shuffled_captions,
)
from support import sqlite_store, tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")

ALL = [
    "eval.perturbations.captions_shuffled=true",
    "eval.perturbations.image_noise=[0.2,0.05]",
    "eval.perturbations.image_missing=true",
    "eval.perturbations.text_missing=true",
]


def _tensors(n: int = 7, length: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {
        "index": torch.arange(n),
        "image": torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g),
    }
    for role in ("teacher", "student"):
        out[f"input_ids_{role}"] = torch.arange(n * length).view(n, length) + (
            0 if role == "teacher" else 1000
        )
        out[f"attention_mask_{role}"] = (
            torch.arange(length) < (torch.arange(n) % length + 1)[:, None]
        ).long()
    return out


def test_planned_names_and_order():
    cfg = PerturbationConfig(
        captions_shuffled=True, image_noise=(0.2, 0.05), image_missing=True, text_missing=True
    )
    assert [p.name for p in planned(cfg)] == [
        "captions_shuffled",
        "image_noise_0.05",
        "image_noise_0.2",
        "image_missing",
        "text_missing",
    ]
    assert [p.modality for p in planned(cfg)] == ["text", "image", "image", "image", "text"]
    assert not PerturbationConfig().enabled and planned(PerturbationConfig()) == []


@pytest.mark.parametrize("n", [2, 3, 20, 101])
def test_caption_source_is_a_seeded_derangement(n):
    src = caption_source(n, seed=3)
    assert sorted(src) == list(range(n))  # every caption used once
    assert not np.any(src == np.arange(n))  # no sample keeps its own
    assert np.array_equal(src, caption_source(n, seed=3))
    if n > 3:
        assert not np.array_equal(src, caption_source(n, seed=4))


def test_shuffled_captions_move_tokens_and_masks_together_and_copy():
    t = _tensors()
    before = {k: v.clone() for k, v in t.items()}
    out = shuffled_captions(t, seed=0)
    src = caption_source(7, 0)
    for role in ("teacher", "student"):
        assert torch.equal(out[f"input_ids_{role}"], before[f"input_ids_{role}"][src])
        assert torch.equal(out[f"attention_mask_{role}"], before[f"attention_mask_{role}"][src])
        assert out[f"input_ids_{role}"].shape == before[f"input_ids_{role}"].shape
    assert out["image"] is t["image"] and torch.equal(out["index"], before["index"])
    assert all(torch.equal(t[k], before[k]) for k in t)  # the split's own tensors are untouched


def test_noisy_images_are_seeded_per_sample_and_scale_with_std():
    images = torch.full((6, 3, 16, 16), 128, dtype=torch.uint8)
    a = noisy_images(images, 0.1, seed=0)
    assert a.dtype == torch.uint8 and a.shape == images.shape
    assert torch.equal(a, noisy_images(images, 0.1, seed=0))
    assert not torch.equal(a, noisy_images(images, 0.1, seed=1))
    assert torch.equal(noisy_images(images[:3], 0.1, seed=0), a[:3])  # not a function of the batch
    assert torch.equal(images, torch.full_like(images, 128))  # input untouched
    spread = [float((noisy_images(images, s, 0).float() - 128).std()) for s in (0.02, 0.1)]
    assert spread[0] == pytest.approx(0.02 * 255, rel=0.1) and spread[1] == pytest.approx(0.1 * 255, rel=0.1)
    clipped = noisy_images(torch.full_like(images, 250), 0.5, 0)
    assert int(clipped.max()) == 255 and int(clipped.min()) >= 0


def test_missing_zeroes_the_projected_embedding_as_modality_dropout_does(synth_wound):
    from pipeline.training.run import build_model, prepare

    cfg = load_experiment(
        "default", [*tiny_overrides(synth_wound, epochs=1), "student.fusion.name=modality_dropout"]
    )
    data, _ = prepare(cfg, say=lambda s: None)
    model = build_model(cfg.student, data, "student", 0).eval()
    batch = next(iter(data.loader("test", 8)))
    with torch.no_grad():
        clean = model(batch)
        with missing(model, "text"):
            out = model(batch)
        # modality dropout's dropped text: its embedding zeroed before the fusion's MLP
        expected = model.fusion.mlp(torch.cat([clean.image, torch.zeros_like(clean.text)], -1))
        assert torch.allclose(out.fused, expected, atol=1e-6)
        assert torch.count_nonzero(out.text) == 0 and torch.equal(out.image, clean.image)
        assert torch.equal(model(batch).fused, clean.fused)  # the hook is gone on exit
    split = data.splits["test"]
    same = perturbed_split(split, Perturbation("image_missing", "image", missing=True), 0)
    assert all(same.t[k] is split.t[k] for k in split.t if k != "labels")  # inputs as they are


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "eval.perturbations.nosie=[0.1]",
            "eval.perturbations.nosie: unknown key \\(closest: image_noise\\)",
        ),
        (
            "eval.perturbations.image_noise=[0.1,0.1]",
            "eval.perturbations.image_noise: expected distinct stds",
        ),
        (
            "eval.perturbations.image_noise=[0]",
            "eval.perturbations.image_noise: expected noise stds in \\(0, 1\\]",
        ),
        (
            "eval.perturbations.image_noise=[1.5]",
            "eval.perturbations.image_noise: expected noise stds in \\(0, 1\\]",
        ),
        ("eval.perturbations.image_noise=0.1", "eval.perturbations.image_noise: expected a list"),
        (
            "eval.perturbations.text_missing=yes please",
            "eval.perturbations.text_missing: expected true or false",
        ),
        ("eval.perturbations.seed=-1", "eval.perturbations.seed: expected a value >= 0"),
        ("eval.perturb.image_missing=true", "eval.perturb: unknown key \\(closest: perturbations\\)"),
    ],
)
def test_bad_perturbation_config_is_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_experiment("default", [override])
    assert "\n" not in str(err.value) and str(err.value).startswith(f"override {override!r}")


def test_perturbations_are_refused_for_bags_and_leave_hashes_alone_when_unset():
    from pipeline.config.loader import config_hash
    from pipeline.config.params import run_params

    bags = ["dataset=synthetic-brats", "profile=mil-tiny", "loss.name=none"]
    with pytest.raises(ConfigError, match="eval.perturbations: test-time perturbations alter one image"):
        load_experiment("default", [*bags, "eval.perturbations.image_missing=true"])
    plain, on = load_experiment("default"), load_experiment("default", ALL)
    assert not any(k.startswith("eval.") for k in run_params(plain))  # runs without it: params as before
    assert run_params(on)["eval.perturbations.image_noise"] == "[0.2, 0.05]"  # as written
    assert config_hash(plain) != config_hash(on)
    assert config_hash(plain) == config_hash(load_experiment("default", ["eval.perturbations.seed=0"]))


def _artifact(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> bytes:
    return Path(client.download_artifacts(run_id, path, str(tmp_path / run_id))).read_bytes()


@pytest.mark.slow
def test_clean_predictions_are_unchanged_and_perturbed_runs_repeat(tmp_path, synth_wound, monkeypatch):
    """The same student three times (trained without a teacher: what is checked here is its
    evaluation): without perturbations, with, and with again. The clean test predictions and
    metrics are the same bytes and numbers in all three; the perturbed ones are logged beside
    them, identical in both perturbed runs."""
    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    from pipeline.training.run import prepare, run_student

    base = [*tiny_overrides(synth_wound, epochs=1), "loss.name=none", "tracking.system_metrics=false"]
    clean, perturbed = load_experiment("default", base), load_experiment("default", [*base, *ALL])
    data, device = prepare(clean, say=lambda s: None)
    before = {k: v.clone() for k, v in data.splits["test"].t.items() if k != "labels"}
    said: list[str] = []
    runs = [
        run_student(cfg, data, device, None, "", say=said.append) for cfg in (clean, perturbed, perturbed)
    ]
    client = MlflowClient(uri)
    tests = [_artifact(client, rid, "predictions/test.csv", tmp_path) for rid, _ in runs]
    assert tests[0] == tests[1] == tests[2]
    clean_metrics = {k: v for k, v in runs[0][1].items() if k.startswith("test/")}
    assert clean_metrics and all(runs[i][1][k] == v for i in (1, 2) for k, v in clean_metrics.items())
    assert not any(k.startswith("test_perturbed/") for k in client.get_run(runs[0][0]).data.metrics)
    names = [p.name for p in planned(perturbed.eval.perturbations)]
    logged = client.get_run(runs[1][0]).data.metrics
    for name in names:
        assert 0 <= logged[f"test_perturbed/{name}/avg_f1"] <= 1
        assert f"test_perturbed/{name}/type/f1" in logged
        a, b = (_artifact(client, rid, f"predictions/perturbed/{name}.csv", tmp_path) for rid, _ in runs[1:])
        assert a == b and a.splitlines()[0] == tests[0].splitlines()[0]  # same columns as test.csv
        # probabilities are in the file: a perturbation that reached the model changes its bytes
        assert a != tests[0], name
    assert all(torch.equal(data.splits["test"].t[k], v) for k, v in before.items())  # data untouched
    assert any(s.startswith("student: test avg F1 under perturbations: captions_shuffled") for s in said)
