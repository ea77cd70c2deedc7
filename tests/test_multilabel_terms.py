"""The multi-label loss terms, pinned against reference implementations: torch's BCE with
pos_weight, torchvision's sigmoid focal loss, and the Bernoulli KL of torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, kl_divergence
from torchvision.ops import sigmoid_focal_loss

from losses.multilabel_terms import (
    bce_pos_weight,
    multilabel_kd,
    pos_weight_from_counts,
    sigmoid_focal,
    xlite_objective,
)

B, K = 16, 14


def logits(seed: int, scale: float = 2.0, grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(B, K, generator=g)).requires_grad_(grad)


def targets(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, K, generator=g) < 0.3).float()


# --------------------------------------------------------------------------- pos_weight / BCE
def test_pos_weight_is_negatives_over_positives_with_clamp():
    pw = pos_weight_from_counts([10, 0, 5, 7], [90, 40, 5, 0])
    assert pw.dtype == torch.float32
    # label 1 has no positives: negatives / 1, finite; label 3 has no negatives: 1 / 7, not 0
    assert pw.tolist() == pytest.approx([9.0, 40.0, 1.0, 1 / 7])


def test_pos_weight_rejects_bad_counts():
    with pytest.raises(ValueError, match="non-negative"):
        pos_weight_from_counts([1, -1], [1, 1])
    with pytest.raises(ValueError, match="equal 1-d"):
        pos_weight_from_counts([1, 2], [1, 2, 3])


def test_bce_pos_weight_matches_torch_and_hand_formula():
    z, y = logits(0), targets(1)
    pw = torch.linspace(0.5, 8.0, K)
    got = bce_pos_weight(z, y, pw)
    assert torch.allclose(got, F.binary_cross_entropy_with_logits(z, y, pos_weight=pw))
    p = torch.sigmoid(z.double())
    hand = -(pw.double() * y * p.log() + (1 - y) * (1 - p).log()).mean()
    assert got.item() == pytest.approx(hand.item(), rel=1e-5)
    # the weight matters: a different weight gives a different value
    assert not torch.allclose(got, bce_pos_weight(z, y, None))


def test_bce_pos_weight_zero_positive_label_stays_finite():
    y = targets(1)
    y[:, 0] = 0
    pw = pos_weight_from_counts(y.sum(0), (1 - y).sum(0))
    assert torch.isfinite(bce_pos_weight(logits(0), y, pw))


# --------------------------------------------------------------------------- focal
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.5, 0.0), (-1.0, 1.5), (0.9, 3.0)])
def test_sigmoid_focal_matches_torchvision(alpha, gamma):
    z, y = logits(2), targets(3)
    ref = sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma, reduction="mean")
    assert torch.allclose(sigmoid_focal(z, y, alpha, gamma), ref, atol=1e-7)


def test_sigmoid_focal_without_alpha_and_gamma_is_bce():
    z, y = logits(2), targets(3)
    assert torch.allclose(sigmoid_focal(z, y, alpha=-1, gamma=0.0), F.binary_cross_entropy_with_logits(z, y))


# --------------------------------------------------------------------------- multi-label KD
def bernoulli_reference(z_s: torch.Tensor, z_t: torch.Tensor, t: float) -> torch.Tensor:
    """KL(Bern(sigmoid(z_t/T)) || Bern(sigmoid(z_s/T))) * T^2, mean over batch and labels."""
    kl = kl_divergence(Bernoulli(logits=z_t.double() / t), Bernoulli(logits=z_s.double() / t))
    return kl.mean() * t * t


@pytest.mark.parametrize("t", [1.0, 4.0, 8.0])
def test_multilabel_kd_matches_bernoulli_kl(t):
    z_s, z_t = logits(4), logits(5, scale=3.0)
    got = multilabel_kd(z_s, z_t, t)
    assert got.item() == pytest.approx(bernoulli_reference(z_s, z_t, t).item(), rel=1e-5)


def test_multilabel_kd_direction_is_teacher_to_student():
    # KL is asymmetric: the value is KL(teacher || student), not the reverse
    z_s, z_t = logits(4), logits(5, scale=3.0)
    got = multilabel_kd(z_s, z_t, 2.0).item()
    assert got == pytest.approx(bernoulli_reference(z_s, z_t, 2.0).item(), rel=1e-5)
    assert got != pytest.approx(bernoulli_reference(z_t, z_s, 2.0).item(), rel=1e-3)


def test_multilabel_kd_zero_for_equal_logits_and_positive_otherwise():
    z = logits(6)
    assert multilabel_kd(z, z.clone(), 4.0).abs().item() < 1e-6
    assert multilabel_kd(z, z + 0.5, 4.0).item() > 0


def test_multilabel_kd_teacher_detached_and_finite_at_saturation():
    z_s, z_t = logits(7, grad=True), logits(8, grad=True)
    multilabel_kd(z_s, z_t, 4.0).backward()
    assert z_t.grad is None and z_s.grad is not None and z_s.grad.abs().sum() > 0
    big = torch.full((2, 3), 200.0)
    assert torch.isfinite(multilabel_kd(-big, big, 1.0))


def test_multilabel_kd_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="temperature"):
        multilabel_kd(logits(0), logits(1), 0.0)


# --------------------------------------------------------------------------- objective
def test_xlite_objective_terms_are_weighted_and_sum_to_formula():
    z_s, z_t, y = logits(9), logits(10), targets(11)
    pw = pos_weight_from_counts(y.sum(0), (1 - y).sum(0))
    a, t, lam = 0.7, 4.0, 0.5
    terms = xlite_objective(z_s, z_t, y, alpha=a, temperature=t, pos_weight=pw, focal_weight=lam)
    assert set(terms) == {"kd", "bce", "focal"}
    assert torch.allclose(terms["kd"], a * multilabel_kd(z_s, z_t, t))
    assert torch.allclose(terms["bce"], (1 - a) * bce_pos_weight(z_s, y, pw))
    assert torch.allclose(terms["focal"], lam * sigmoid_focal_loss(z_s, y, 0.25, 2.0, reduction="mean"))
    expected = a * bernoulli_reference(z_s, z_t, t) + (1 - a) * F.binary_cross_entropy_with_logits(
        z_s.double(), y.double(), pos_weight=pw.double()
    )
    expected = expected + lam * sigmoid_focal_loss(z_s.double(), y.double(), reduction="mean")
    assert math.isclose(sum(terms.values()).item(), expected.item(), rel_tol=1e-5)


def test_xlite_objective_without_teacher_is_bce_with_weight_one():
    z_s, y = logits(9), targets(11)
    terms = xlite_objective(z_s, None, y, alpha=0.7, temperature=4.0)
    assert set(terms) == {"bce"}
    assert torch.allclose(terms["bce"], F.binary_cross_entropy_with_logits(z_s, y))
    assert set(xlite_objective(z_s, logits(1), y, alpha=0.0, temperature=4.0)) == {"bce"}


def test_xlite_objective_gradient_reaches_student_only():
    z_s, z_t, y = logits(12, grad=True), logits(13, grad=True), targets(14)
    sum(xlite_objective(z_s, z_t, y, alpha=0.5, temperature=2.0, focal_weight=1.0).values()).backward()
    assert z_t.grad is None and z_s.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 1.5, "temperature": 4.0}, "alpha"),
        ({"alpha": 0.5, "temperature": 0.0}, "temperature"),
        ({"alpha": 0.5, "temperature": 4.0, "focal_weight": -1.0}, "focal_weight"),
    ],
)
def test_xlite_objective_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        xlite_objective(logits(0), None, targets(), **kwargs)


def test_xlite_objective_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="one shape"):
        xlite_objective(logits(0), logits(1)[:, :3], targets(), alpha=0.5, temperature=4.0)
