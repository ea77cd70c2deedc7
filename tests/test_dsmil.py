"""DSMIL (models/dsmil.py): the two streams, masking of padded instances, invariances, and the
match with the reference's single-bag computation (binli123/dsmil-wsi BClassifier)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ConfigError
from models.dsmil import DSMIL, build_dsmil

D, K = 8, 3


pytestmark = pytest.mark.usefixtures("one_thread")


def feature_model(seed: int = 0, **kw) -> DSMIL:
    """DSMIL on pre-computed instance features (identity encoder), in float64 for tight checks."""
    torch.manual_seed(seed)
    return DSMIL(nn.Identity(), D, K, query_dim=4, instance_ndim=1, **kw).double().eval()


def bags(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Two bags of 5 and 3 real instances, padded to 6 with junk (NaN on one padded row)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, D, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    x[~mask] = 1e6
    x[1, 4] = float("nan")  # padding never reaches the encoder, so even NaN is harmless
    return x, mask


def test_attention_sums_to_one_over_real_instances_and_is_zero_on_padding():
    x, mask = bags()
    out = feature_model(passing_v=True)(x, mask)
    assert out.attention.shape == (2, 6, K)
    torch.testing.assert_close(out.attention.sum(1), torch.ones(2, K, dtype=out.attention.dtype))
    assert (out.attention[~mask] == 0).all()
    assert (out.attention[mask] > 0).all()
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.bag_embedding).all()


def test_critical_is_the_argmax_of_instance_logits_over_real_instances():
    x, mask = bags()
    out = feature_model()(x, mask)
    for b in range(2):
        real = out.instance_logits[b, mask[b]]  # [n_b, K]; real instances are the first n_b
        assert torch.equal(out.critical[b], real.argmax(0))
        torch.testing.assert_close(out.max_logits[b], real.max(0).values)


def test_logits_are_the_mean_of_the_two_streams():
    x, mask = bags()
    out = feature_model()(x, mask)
    torch.testing.assert_close(out.logits, (out.max_logits + out.bag_logits) / 2)


@pytest.mark.parametrize("passing_v", [False, True])
def test_outputs_are_invariant_to_instance_permutation(passing_v):
    model = feature_model(passing_v=passing_v, value_dim=5 if passing_v else None)
    x, mask = bags()
    perm = torch.tensor([3, 5, 0, 4, 1, 2])  # moves padding into the middle, too
    a, b = model(x, mask), model(x[:, perm], mask[:, perm])
    for name in ("logits", "bag_logits", "max_logits", "bag_embedding"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name))
    torch.testing.assert_close(a.attention[:, perm], b.attention)
    assert torch.equal(perm[b.critical], a.critical)


def test_padding_does_not_change_a_bag():
    model = feature_model(passing_v=True)
    x, mask = bags()
    batched = model(x, mask)
    for i, n in enumerate((5, 3)):
        alone = model(x[i, :n])  # one bag, no mask: [N, D] -> B = 1
        assert alone.logits.shape == (1, K)
        for name in ("logits", "bag_logits", "max_logits", "bag_embedding", "critical"):
            torch.testing.assert_close(getattr(alone, name)[0], getattr(batched, name)[i])
        torch.testing.assert_close(alone.attention[0], batched.attention[i, :n])


def test_bag_classifier_is_a_linear_map_of_the_flattened_embedding():
    model = feature_model(passing_v=True, value_dim=5)
    x, mask = bags()
    out = model(x, mask)
    conv = model.bag_classifier
    assert out.bag_embedding.shape == (2, model.embedding_dim) == (2, K * 5)
    expected = F.linear(out.bag_embedding, conv.weight.reshape(K, K * 5), conv.bias)
    torch.testing.assert_close(out.bag_logits, expected)


@pytest.mark.parametrize("nonlinear", [True, False])
def test_single_bag_matches_the_reference_computation(nonlinear):
    """The reference BClassifier.forward (single bag, classes sorted per column), written out
    with this module's weights."""
    model = feature_model(nonlinear=nonlinear, passing_v=True)
    feats = torch.randn(7, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    out = model(feats)
    c = model.instance_classifier(feats)  # N x C
    V = model.value(feats)
    Q = model.query(feats)
    _, m_indices = torch.sort(c, 0, descending=True)
    q_max = model.query(feats[m_indices[0]])  # C x Q
    A = F.softmax(Q @ q_max.T / math.sqrt(Q.shape[1]), 0)  # N x C
    B = (A.T @ V)[None]  # 1 x C x V
    torch.testing.assert_close(out.bag_logits, model.bag_classifier(B).view(1, -1))
    torch.testing.assert_close(out.attention[0], A)
    torch.testing.assert_close(out.max_logits, c.max(0).values[None])


def test_gradients_reach_the_encoder_and_both_streams():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2))
    encoder.append(nn.AdaptiveAvgPool2d(1))  # [M, 6, 1, 1]: DSMIL flattens it
    model = DSMIL(encoder, 6, 2, query_dim=4, passing_v=True, dropout_v=0.1).train()
    x = torch.randn(2, 3, 1, 8, 8)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    out = model(x, mask)
    assert out.features.shape == (2, 3, 6) and (out.features[~mask] == 0).all()
    F.cross_entropy(out.logits, torch.tensor([0, 1])).backward()
    parts = {
        "encoder": model.encoder[0].weight,
        "instance stream": model.instance_classifier.weight,
        "query": model.query[0].weight,
        "value": model.value[1].weight,
        "bag stream": model.bag_classifier.weight,
    }
    for name, p in parts.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_invalid_inputs_and_settings_are_refused():
    model = feature_model()
    x, mask = bags()
    mask[1] = False
    with pytest.raises(ValueError, match="at least one real instance"):
        model(x, mask)
    with pytest.raises(ValueError, match="expects"):
        model(torch.zeros(2, 3, 4, D, dtype=torch.float64))
    with pytest.raises(ConfigError, match="passing_v"):
        DSMIL(nn.Identity(), D, K, value_dim=4)
    with pytest.raises(ConfigError, match="passing_v"):
        DSMIL(nn.Identity(), D, K, dropout_v=0.25)


def test_timm_backbone_builds_and_runs_a_padded_batch():
    torch.manual_seed(0)
    model = build_dsmil("mobilenetv3_small_050", in_chans=3, num_classes=2).eval()
    assert model.feature_dim == 1024  # the conv head's width, not num_features (288)
    x = torch.randn(2, 3, 3, 32, 32)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    with torch.no_grad():
        out = model(x, mask)
        alone = model(x[1, :2])
    assert out.logits.shape == (2, 2) and out.features.shape == (2, 3, 1024)
    assert out.bag_embedding.shape == (2, 2 * 1024)
    torch.testing.assert_close(alone.logits[0], out.logits[1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="unknown timm model"):
        build_dsmil("mobilenetv3_smal_050", in_chans=3, num_classes=2)
