"""Losses on multilabel targets: every loss that accepts the multilabel kind gives finite, named
terms; `xlite_kd` is exactly the seed's alpha * KD + (1 - alpha) * BCE + lambda * Focal."""

from __future__ import annotations

import pytest
import torch
import torchvision

from core.errors import ConfigError
from core.schema import LossConfig
from losses import LOSSES, LossContext
from losses.multilabel_terms import multilabel_kd, pos_weight_from_counts
from models.outputs import ModelOutput
from pipeline.config.loader import load_experiment, parse
from tasks import TASK_KINDS

LABELS = ("Atelectasis", "Effusion", "Hernia", "Mass", "Nodule")
KIND = TASK_KINDS.get("multilabel")({"findings": LABELS})
MULTILABEL_LOSSES = [n for n in LOSSES.names() if "multilabel" in LOSSES.get(n).kinds]


def _data(batch: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(batch, len(LABELS), generator=g) < 0.3).float()

    def out(dim: int) -> ModelOutput:
        r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
        return ModelOutput(
            logits={"findings": r(batch, len(LABELS))}, image=r(batch, dim), text=None, fused=r(batch, dim)
        )

    return out(64), out(96), {"findings": y}, torch.arange(batch)


def _loss(name: str, y: torch.Tensor, **cfg):
    counts = {"findings": KIND.label_counts("findings", y)}
    ctx = LossContext(("findings",), {"findings": len(LABELS)}, counts, 64, 96, len(y), KIND)
    return LOSSES.get(name)(parse(LossConfig, {"name": name, "label_loss": "weighted_bce", **cfg}), ctx)


@pytest.mark.parametrize("name", MULTILABEL_LOSSES)
def test_every_multilabel_loss_gives_finite_named_terms(name):
    student, teacher, y, index = _data()
    terms = _loss(name, y["findings"])(student, teacher, y, index)
    assert "weighted_bce" in terms and all(torch.isfinite(v) and v.dim() == 0 for v in terms.values())


def test_xlite_kd_is_the_seeds_objective():
    student, teacher, y, index = _data()
    alpha, temp, lam, gamma = 0.7, 4.0, 0.5, 2.0
    loss = _loss(
        "xlite_kd",
        y["findings"],
        alpha=alpha,
        temperature=temp,
        focal_gamma=gamma,
        params={"focal_weight": lam},
    )
    terms = loss(student, teacher, y, index)
    assert set(terms) == {"kd", "weighted_bce", "focal"}
    z, zt, t = student.logits["findings"], teacher.logits["findings"], y["findings"]
    pw = pos_weight_from_counts(t.sum(0), len(t) - t.sum(0))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, t, pos_weight=pw)
    focal = torchvision.ops.sigmoid_focal_loss(z, t, alpha=0.25, gamma=gamma, reduction="mean")
    torch.testing.assert_close(terms["kd"], alpha * multilabel_kd(z, zt, temp))
    torch.testing.assert_close(terms["weighted_bce"], (1 - alpha) * bce)
    torch.testing.assert_close(terms["focal"], lam * focal)
    same = ModelOutput(logits={"findings": z.clone()}, image=None, text=None, fused=student.fused)
    assert float(loss(student, same, y, index)["kd"]) == pytest.approx(0.0, abs=1e-7)


def test_xlite_kd_on_a_multiclass_dataset_is_refused_before_any_work():
    with pytest.raises(
        ConfigError,
        match=r"loss.name: 'xlite_kd' is for multilabel datasets, and dataset 'synthetic-wound' is multiclass",
    ):
        load_experiment("default", ["loss.name=xlite_kd"])
    cfg = load_experiment(
        "default", ["dataset=synthetic-chestxray", "profile=xlite-tiny", "loss.name=xlite_kd"]
    )
    assert cfg.loss.name == "xlite_kd"


def test_xlite_kd_at_alpha_zero_is_the_kd_control_objective():
    """The kd_control phase (alpha 0): no teacher term, the label term at full weight, the focal
    term unchanged; equal to the loss without a teacher, so the teacher's logits change nothing."""
    student, teacher, y, index = _data()
    loss = _loss("xlite_kd", y["findings"], alpha=0.0, temperature=4.0)
    with_teacher, without = loss(student, teacher, y, index), loss(student, None, y, index)
    assert set(with_teacher) == {"weighted_bce", "focal"}
    for name in with_teacher:
        torch.testing.assert_close(with_teacher[name], without[name])
    kd = _loss("xlite_kd", y["findings"], alpha=0.5, temperature=4.0)(student, teacher, y, index)
    torch.testing.assert_close(kd["focal"], with_teacher["focal"])  # only the teacher's weight differs
    torch.testing.assert_close(2 * kd["weighted_bce"], with_teacher["weighted_bce"])


def test_xlite_kd_equals_its_term_list():
    """X-Lite as terms: (1 - alpha) label + alpha logit_kd (the Bernoulli form) + lambda focal."""
    student, teacher, y, index = _data()
    alpha, lam = 0.7, 0.5
    preset = _loss("xlite_kd", y["findings"], alpha=alpha, temperature=4.0, params={"focal_weight": lam})
    terms = [
        {"term": "label", "weight": 1 - alpha},
        {"term": "logit_kd", "name": "kd", "weight": alpha},
        {"term": "focal", "weight": lam, "params": {"alpha": 0.25}},
    ]
    composed = _loss("terms", y["findings"], temperature=4.0, params={"terms": terms})
    want, got = preset(student, teacher, y, index), composed(student, teacher, y, index)
    assert set(got) == set(want) == {"weighted_bce", "kd", "focal"}
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-6, atol=1e-7, msg=k)
