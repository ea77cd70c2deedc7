"""The loss study's numbers on synthetic data, pinned: refactors (the task-kind seam, the
pipeline split) must give the same metrics as before them.

The pin (tests/data/pinned_loss_study.json) was recorded before the refactor of issue 12 with

    python tests/test_pinned_metrics.py --record

One teacher (2 epochs) and one student per loss (2 epochs) on the test suite's small
synthetic-wound set at 32 px, one thread, tracking off. Per-epoch training losses are compared
to a relative 1e-4 (float summation order may differ across CPUs); F1 values, which move in
steps of one sample, must be identical.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest

PIN = Path(__file__).parent / "data" / "pinned_loss_study.json"
LOSSES = ("none", "vanilla", "combined", "crd", "rkd", "mmd")
TERM_LISTS = ("none", "vanilla", "combined", "rkd", "mmd")  # the presets written as term lists


def _pinned(key: str) -> bool:
    """F1 metrics that existed when the numbers were pinned (best_train/ came later: new
    metrics add keys, they do not change the pinned ones)."""
    return "/f1" in key and not key.startswith("best_train/")


def as_terms(base: list[str], loss: str) -> list[str]:
    """Overrides that write `loss` (a preset) as its term list (`loss.name: terms`), at the
    alpha, temperature and beta the experiment gives the preset."""
    from test_loss_terms import preset_terms

    from pipeline.config.loader import load_experiment

    c = load_experiment("default", [*base, f"loss.name={loss}"]).loss
    terms = json.dumps(preset_terms(loss, c.alpha, c.beta))
    return ["loss.name=terms", f"loss.temperature={c.temperature}", f"loss.params={{terms: {terms}}}"]


def loss_study(root: Path, terms: bool = False) -> dict[str, dict[str, float]]:
    import torch

    from pipeline.config.loader import load_experiment
    from pipeline.training.run import ensure_teacher, prepare, run_student
    from support import tiny_overrides

    os.environ["KDSWEEP_TRACKING"] = "off"
    torch.set_num_threads(1)
    out: dict[str, dict[str, float]] = {}
    base = tiny_overrides(root, epochs=2)
    cfg = load_experiment("default", [*base, "loss.name=none"])
    data, device = prepare(cfg, lambda _: None)
    teacher, _, _, t_metrics = ensure_teacher(cfg, data, device, say=lambda _: None)
    out["teacher"] = {k: v for k, v in t_metrics.items() if _pinned(k)}
    for loss in TERM_LISTS if terms else LOSSES:
        cfg = load_experiment("default", [*base, *(as_terms(base, loss) if terms else [f"loss.name={loss}"])])
        record: dict[str, float] = {}

        def on_epoch(role: str, epoch: int, r: dict, record=record) -> None:
            record[f"train/loss@{epoch}"] = r["train/loss"]
            record[f"dev/avg_f1@{epoch}"] = r["dev/avg_f1"]

        _, m = run_student(cfg, data, device, teacher, "untracked", say=lambda _: None, on_epoch=on_epoch)
        record.update({k: v for k, v in m.items() if _pinned(k)})
        out[loss] = record
    return out


@pytest.mark.slow
def test_loss_study_metrics_are_unchanged(synth_wound, monkeypatch):
    monkeypatch.setenv("KDSWEEP_TRACKING", "off")
    pinned = json.loads(PIN.read_text())
    got = loss_study(synth_wound)
    assert set(got) == set(pinned)
    for name, values in pinned.items():
        assert set(got[name]) == set(values), name
        for key, want in values.items():
            have = got[name][key]
            if key.startswith("train/loss"):
                assert math.isclose(have, want, rel_tol=1e-4), (name, key, have, want)
            else:
                assert have == pytest.approx(want, abs=1e-9), (name, key, have, want)


@pytest.mark.slow
def test_the_presets_as_term_lists_give_the_pinned_numbers(synth_wound, monkeypatch):
    """`loss.name: terms` with a preset's term list trains the same student as the preset."""
    monkeypatch.setenv("KDSWEEP_TRACKING", "off")
    pinned = json.loads(PIN.read_text())
    got = loss_study(synth_wound, terms=True)
    assert set(got) == {"teacher", *TERM_LISTS}
    for name in TERM_LISTS:
        assert set(got[name]) == set(pinned[name]), name
        for key, want in pinned[name].items():
            have = got[name][key]
            if key.startswith("train/loss"):
                assert math.isclose(have, want, rel_tol=1e-4), (name, key, have, want)
            else:
                assert have == pytest.approx(want, abs=1e-9), (name, key, have, want)


if __name__ == "__main__" and "--record" in sys.argv:
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import SMALL, SMALL_IMAGE_SIZE

    from pipeline.data.synth import generate

    with tempfile.TemporaryDirectory() as d:
        os.environ.setdefault("KDSWEEP_CACHE", str(Path(d) / "cache"))
        root = Path(d) / "wound"
        generate("wound", root, dict(SMALL), image_size=SMALL_IMAGE_SIZE, seed=0)
        PIN.parent.mkdir(exist_ok=True)
        PIN.write_text(json.dumps(loss_study(root), indent=2, sort_keys=True) + "\n")
    print(f"wrote {PIN}")
