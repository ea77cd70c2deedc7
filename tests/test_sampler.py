"""Class-balanced sampling (pipeline.data.sampler.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.data.sampler import sampler_weights, weighted_sampler

LABELS = [0] * 80 + [1] * 15 + [2] * 5


pytestmark = pytest.mark.usefixtures("one_thread")


def test_weights_are_inverse_class_frequency():
    w = sampler_weights(LABELS)
    y = torch.tensor(LABELS)
    expected = torch.tensor([1 / 80, 1 / 15, 1 / 5], dtype=torch.float64)[y]
    torch.testing.assert_close(w, expected)
    totals = [w[y == c].sum().item() for c in range(3)]
    assert totals == pytest.approx([1.0, 1.0, 1.0])
    # Any integer ids, any container: ids 3 and 7 only.
    torch.testing.assert_close(
        sampler_weights(np.array([7, 3, 3, 7, 7])),
        torch.tensor([1 / 3, 0.5, 0.5, 1 / 3, 1 / 3], dtype=torch.float64),
    )


def test_same_seed_same_draw_different_seed_different_draw():
    a, b, c = (list(weighted_sampler(LABELS, seed=s)) for s in (1, 1, 2))
    assert a == b and a != c
    assert len(a) == len(LABELS)
    assert len(list(weighted_sampler(LABELS, seed=1, num_samples=7))) == 7


def test_draws_are_class_balanced():
    idx = torch.tensor(list(weighted_sampler(LABELS, seed=0, num_samples=30_000)))
    freq = torch.bincount(torch.tensor(LABELS)[idx], minlength=3).double() / len(idx)
    assert torch.allclose(freq, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.02)


def test_invalid_labels_are_refused():
    with pytest.raises(ValueError, match="empty"):
        sampler_weights([])
    with pytest.raises(ValueError, match="integer"):
        sampler_weights([0.5, 1.0])
    with pytest.raises(ValueError, match="num_samples"):
        weighted_sampler(LABELS, seed=0, num_samples=0)
