"""LDAM-DRW (losses/ldam_drw.py) against the reference's formula (kaidic/LDAM-DRW)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from losses.ldam_drw import LDAMLoss, drw_weight_at, drw_weights, ldam_margins

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_ldam(x, target, cls_num_list, max_m=0.5, s=30.0, weight=None):
    """The reference LDAMLoss.forward, on CPU: margins from numpy, one-hot by scatter."""
    m_list = 1.0 / np.sqrt(np.sqrt(np.asarray(cls_num_list, dtype=np.float64)))
    m_list = torch.tensor(m_list * (max_m / np.max(m_list)), dtype=torch.float32)
    index = torch.zeros_like(x, dtype=torch.bool)
    index.scatter_(1, target.view(-1, 1), True)
    batch_m = torch.matmul(m_list[None, :], index.float().transpose(0, 1)).view(-1, 1)
    output = torch.where(index, x - batch_m, x)
    return F.cross_entropy(s * output, target, weight=weight)


@pytest.mark.parametrize("counts", [[900, 100], [500, 200, 50, 20, 5]])
@pytest.mark.parametrize("weighted", [False, True])
def test_ldam_equals_the_reference_formula(counts, weighted):
    g = torch.Generator().manual_seed(len(counts) + weighted)
    k = len(counts)
    x = torch.randn(16, k, generator=g) * 3
    y = torch.randint(0, k, (16,), generator=g)
    w = torch.rand(k, generator=g) + 0.5 if weighted else None
    ours = LDAMLoss(counts, max_m=0.4, s=20.0, weight=w)(x, y)
    torch.testing.assert_close(ours, reference_ldam(x, y, counts, max_m=0.4, s=20.0, weight=w))


def test_ldam_with_no_margin_and_unit_scale_is_cross_entropy():
    x, y = torch.randn(10, 4), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 3, 3])
    torch.testing.assert_close(LDAMLoss([40, 30, 20, 10], max_m=0.0, s=1.0)(x, y), F.cross_entropy(x, y))


def test_margin_only_on_the_true_class_makes_the_loss_larger():
    x, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    plain = LDAMLoss([10, 10, 10], max_m=0.0, s=5.0)(x, y)
    assert LDAMLoss([10, 10, 10], max_m=0.5, s=5.0)(x, y) > plain


def test_margins():
    counts = [1000, 100, 10, 1]
    m = ldam_margins(counts, max_m=0.5)
    assert m.max().item() == pytest.approx(0.5) and m[-1].item() == pytest.approx(0.5)
    assert torch.all(m[1:] > m[:-1])  # rarer class, larger margin
    for a in range(4):
        for b in range(4):
            assert (m[a] / m[b]).item() == pytest.approx((counts[b] / counts[a]) ** 0.25, rel=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        ldam_margins([10, 0])


def test_drw_weights():
    counts, beta = [300, 30, 3], 0.999
    raw = np.array([(1 - beta) / (1 - beta**n) for n in counts])
    expected = raw / raw.sum() * 3
    w = drw_weights(counts, beta)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)
    assert w.sum().item() == pytest.approx(3.0)
    assert torch.all(w[1:] > w[:-1])  # rarer class, heavier
    torch.testing.assert_close(drw_weights(counts, 0.0), torch.ones(3))
    # Near beta = 1 the weights approach inverse frequency.
    inv = 1 / np.array(counts, dtype=float)
    np.testing.assert_allclose(drw_weights(counts, 1 - 1e-9).numpy(), inv / inv.sum() * 3, rtol=1e-4)
    with pytest.raises(ValueError, match="beta"):
        drw_weights(counts, 1.0)


def test_drw_weight_at_switches_exactly_at_drw_epoch():
    counts = [50, 5]
    assert drw_weight_at(1, 10, counts) is None
    assert drw_weight_at(9, 10, counts) is None
    torch.testing.assert_close(drw_weight_at(10, 10, counts), drw_weights(counts))
    torch.testing.assert_close(drw_weight_at(11, 10, counts, beta=0.99), drw_weights(counts, 0.99))
    with pytest.raises(ValueError, match="1-based"):
        drw_weight_at(0, 10, counts)


def test_set_weight_is_the_drw_switch():
    counts = [90, 10]
    x, y = torch.randn(12, 2), torch.randint(0, 2, (12,))
    loss = LDAMLoss(counts)
    before = loss(x, y)
    loss.set_weight(drw_weight_at(5, 5, counts))
    torch.testing.assert_close(loss(x, y), reference_ldam(x, y, counts, weight=drw_weights(counts)))
    loss.set_weight(None)
    torch.testing.assert_close(loss(x, y), before)
    with pytest.raises(ValueError, match="weight must be"):
        loss.set_weight(torch.ones(3))
