"""Task kinds, parametrised over the registry: a new kind is tested for free."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from core.errors import ConfigError
from tasks import TASK_KINDS, Predictions

OUTPUTS = {
    "multiclass": {"type": ("a", "b", "c"), "severity": ("lo", "hi")},
    "multilabel": {"findings": ("Atelectasis", "Effusion", "Hernia", "Mass")},
}


def _kind(name: str):
    return TASK_KINDS.get(name)(OUTPUTS[name])


def _targets(kind, n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    if kind.name == "multiclass":
        return {t: kind.encode_labels(t, list(rng.choice(names, n))) for t, names in kind.outputs.items()}
    return {
        t: kind.encode_labels(t, rng.integers(0, 2, (n, len(names))).tolist())
        for t, names in kind.outputs.items()
    }


def _predictions(kind, n: int = 40, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    y = _targets(kind, n, rng)
    probs = {
        t: kind.probabilities(torch.randn(n, kind.width(t), generator=torch.Generator().manual_seed(seed)))
        for t in kind.tasks
    }
    return Predictions(
        {t: p.numpy() for t, p in probs.items()}, {t: v.numpy() for t, v in y.items()}, np.arange(n)
    )


@pytest.mark.parametrize("name", TASK_KINDS.names())
def test_every_kind_has_heads_terms_metrics_and_predictions(name):
    kind = _kind(name)
    assert name in TASK_KINDS and kind.name == name
    x = torch.randn(8, 16)
    for task in kind.tasks:
        assert kind.head(16, task, 0.0)(x).shape == (8, kind.width(task))
    # KD is zero for equal logits and positive otherwise
    z = torch.randn(8, kind.width(kind.tasks[0]))
    assert float(kind.kd(z, z.clone(), 4.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(kind.kd(z, z + torch.randn_like(z), 4.0)) > 0
    # every label loss it names builds and gives a finite, differentiable term
    rng = np.random.default_rng(0)
    y = _targets(kind, 8, rng)
    counts = {t: kind.label_counts(t, v) for t, v in y.items()}
    for loss_name in kind.label_losses:
        term = kind.label_loss(loss_name, 2.0, counts, 8)
        logits = torch.randn(8, kind.width(kind.tasks[0]), requires_grad=True)
        value = term(kind.tasks[0], logits, y[kind.tasks[0]])
        value.backward()
        assert torch.isfinite(value) and logits.grad is not None and isinstance(term.term_name, str)
    with pytest.raises(ConfigError, match=r"loss.label_loss: 'nonsense' .*valid: "):
        kind.label_loss("nonsense", 2.0, counts, 8)
    # the common metric names every study and report may rely on
    pred = _predictions(kind)
    values, _ = kind.metrics(pred, tune=_predictions(kind, seed=1))
    assert "avg_f1" in values
    for task in kind.tasks:
        assert f"{task}/f1" in values and f"{task}/auc" in values
    frame = pd.read_csv(io.StringIO(kind.predictions_csv(pred)))
    assert list(frame["index"]) == list(range(40))


def test_multiclass_metrics_are_sklearns():
    from sklearn.metrics import f1_score

    kind = _kind("multiclass")
    pred = _predictions(kind)
    values, extras = kind.metrics(pred)
    for task, names in kind.outputs.items():
        want = f1_score(
            pred.labels[task],
            pred.probs[task].argmax(1),
            average="macro",
            labels=range(len(names)),
            zero_division=0,
        )
        assert values[f"{task}/f1"] == pytest.approx(want)
        assert extras["confusion"][task].sum() == 40


def test_multilabel_terms_follow_their_references():
    kind = _kind("multilabel")
    rng = np.random.default_rng(0)
    y = _targets(kind, 16, rng)["findings"]
    z = torch.randn(16, 4)
    focal = kind.label_loss("focal", 2.0, {"findings": kind.label_counts("findings", y)}, 16)
    want = torchvision.ops.sigmoid_focal_loss(z, y, alpha=0.25, gamma=2.0, reduction="mean")
    assert float(focal("findings", z, y)) == pytest.approx(float(want), rel=1e-6)
    weighted = kind.label_loss("weighted_bce", 2.0, {"findings": kind.label_counts("findings", y)}, 16)
    pos = y.sum(0).clamp_min(1)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        z, y, pos_weight=(16 - y.sum(0)).clamp_min(1) / pos
    )
    assert float(weighted("findings", z, y)) == pytest.approx(float(ref), rel=1e-6)


def test_multilabel_thresholds_come_from_the_tuning_split_only():
    kind = _kind("multilabel")
    test, dev = _predictions(kind, seed=0), _predictions(kind, seed=1)
    tuned, _ = kind.metrics(test, tune=dev)
    untuned, _ = kind.metrics(test)
    assert tuned["findings/f1"] == untuned["findings/f1"]  # at 0.5 either way
    assert all(untuned[f"findings/threshold/{n}"] == 0.5 for n in OUTPUTS["multilabel"]["findings"])
    shifted = Predictions(test.probs, test.labels, test.index)
    again, _ = kind.metrics(shifted, tune=dev)
    assert again == tuned  # the scored split's own labels never move the thresholds


def test_multilabel_labels_from_names_or_vectors():
    kind = _kind("multilabel")
    a = kind.encode_labels("findings", [{"Effusion", "Mass"}, set(), ["Hernia"]])
    b = kind.encode_labels("findings", [[0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0]])
    assert torch.equal(a, b) and a.dtype == torch.float32
