"""Every registered fusion, parametrised over FUSIONS.names(): a new fusion is tested for free."""

from __future__ import annotations

import pytest
import torch

from core.errors import ConfigError
from models.fusions import FUSIONS, Fusion

DIM = 16
NAMES = FUSIONS.names()
EXPECTED = {
    "simple",
    "concat_mlp",
    "cross_attention",
    "film",
    "gated",
    "transformer_concat",
    "shomr",
    "energy_aware_adaptive",
    "modality_dropout",
}


def build(name: str, *, layers: int = 2, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.05):
    torch.manual_seed(0)
    return FUSIONS.get(name)(dim=DIM, layers=layers, heads=heads, dropout=dropout, aux_weight=aux_weight)


def inputs(batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, DIM, generator=g), torch.randn(batch, DIM, generator=g)


def test_all_expected_fusions_registered():
    assert EXPECTED <= set(NAMES)
    for name in NAMES:
        assert issubclass(FUSIONS.get(name), Fusion)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        FUSIONS.get("nope")
    for name in NAMES:
        assert name in str(err.value)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("batch", [1, 5])
def test_shape_finite_and_aux_scalars(name, training, batch):
    fusion = build(name).train(training)
    fused, aux = fusion(*inputs(batch))
    assert fused.shape == (batch, DIM)
    assert torch.isfinite(fused).all()
    assert isinstance(aux, dict)
    for key, value in aux.items():
        assert isinstance(key, str)
        assert isinstance(value, torch.Tensor) and value.dim() == 0, key
        assert torch.isfinite(value), key


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    fusion = build(name, layers=2).train()
    v, t = inputs(16)
    v.requires_grad_(True)
    t.requires_grad_(True)
    fused, aux = fusion(v, t)
    (fused.sum() + sum(aux.values(), torch.zeros(()))).backward()
    missing = [n for n, p in fusion.named_parameters() if p.grad is None]
    assert not missing, f"{name}: parameters without gradient: {missing}"
    assert v.grad is not None and t.grad is not None
    assert all(torch.isfinite(p.grad).all() for p in fusion.parameters())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 7])
def test_eval_is_deterministic(name, batch):
    fusion = build(name, dropout=0.5)
    fusion.train()
    fusion(*inputs(batch))  # a training call first must not leave state behind
    fusion.eval()
    v, t = inputs(batch)
    with torch.no_grad():
        a, aux_a = fusion(v, t)
        b, aux_b = fusion(v, t)
    assert torch.equal(a, b)
    assert aux_a.keys() == aux_b.keys()
    assert all(torch.equal(aux_a[k], aux_b[k]) for k in aux_a)


def test_film_is_identity_on_vision_at_init():
    fusion = build("film", layers=3).train()  # dropout is irrelevant: the zero layers give 0
    v, t = inputs(6)
    fused, aux = fusion(v, t)
    assert torch.equal(fused, v)
    assert aux == {}
    fused.sum().backward()
    assert fusion.blocks[0].delta_gamma.weight.grad.abs().sum() > 0


def test_film_depends_on_text_after_a_step():
    fusion = build("film", layers=1, dropout=0.0)
    with torch.no_grad():
        fusion.blocks[0].beta.weight.normal_()
    v, t = inputs(4)
    assert not torch.equal(fusion(v, t)[0], fusion(v, torch.zeros_like(t))[0])


def test_gated_is_a_convex_combination_per_dimension():
    fusion = build("gated").eval()
    v, t = inputs(32)
    fused, _ = fusion(v, t)
    h_v, h_t, g = fusion.components(v, t)
    assert g.shape == (32, DIM)
    assert (g > 0).all() and (g < 1).all()
    torch.testing.assert_close(fused, g * h_v + (1 - g) * h_t)
    lo, hi = torch.minimum(h_v, h_t), torch.maximum(h_v, h_t)
    assert (fused >= lo - 1e-6).all() and (fused <= hi + 1e-6).all()
    # recompute from the raw weights, not the helper
    g_ref = torch.sigmoid(torch.cat([v, t], -1) @ fusion.w_g.weight.T + fusion.w_g.bias)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("heads", [1, 2, 4, 8, 16])
def test_cross_attention_accepts_heads_dividing_dim(heads):
    fusion = build("cross_attention", heads=heads, layers=1)
    fused, _ = fusion(*inputs(3))
    assert fused.shape == (3, DIM)


def test_layers_stack_changes_parameter_count():
    for name in ("cross_attention", "film", "transformer_concat", "energy_aware_adaptive"):
        counts = [sum(p.numel() for p in build(name, layers=n).parameters()) for n in (1, 2, 3)]
        assert counts[0] < counts[1] < counts[2], name
        assert counts[2] - counts[1] == counts[1] - counts[0], name


def test_shomr_routing_is_hard_and_balance_loss_is_weighted():
    fusion = build("shomr", aux_weight=0.5, dropout=0.0).eval()
    v, t = inputs(64)
    fused, aux = fusion(v, t)
    vt = torch.cat([v, t], -1)
    choice = fusion.router(vt).argmax(-1)
    expected = torch.stack(
        [fusion.experts[int(c)]((v, t, vt)[int(c)][i : i + 1])[0] for i, c in enumerate(choice)]
    )
    torch.testing.assert_close(fused, expected)
    probs = torch.softmax(fusion.router(vt), -1).mean(0)
    f = torch.bincount(choice, minlength=3).float() / 64
    torch.testing.assert_close(aux["routing_balance"], 0.5 * 3 * (f * probs).sum())
    # training: forward value is exactly one expert's output per sample
    fusion.train()
    torch.manual_seed(3)
    fused, aux = fusion(v, t)
    outs = torch.stack([e(x) for e, x in zip(fusion.experts, (v, t, vt), strict=True)], 1)
    assert (fused.unsqueeze(1) == outs).all(-1).any(1).all()
    assert set(aux) == {"routing_balance"}


def test_energy_aware_skips_expensive_path_in_eval():
    fusion = build("energy_aware_adaptive", aux_weight=0.2).eval()
    v, t = inputs(64)
    with torch.no_grad():
        p = torch.sigmoid(fusion.gate(torch.cat([v, t], -1))).squeeze(-1)
    selected = p > 0.5
    assert 0 < selected.sum() < 64  # both paths exercised at init
    seen = []
    hook = fusion.expensive.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    fused, aux = fusion(v, t)
    hook.remove()
    assert seen == [int(selected.sum())]
    cheap = fusion.cheap((v + t) / 2)
    assert torch.equal(fused[~selected], cheap[~selected])
    assert not torch.allclose(fused[selected], cheap[selected])
    torch.testing.assert_close(aux["energy"], 0.2 * fusion.cost * p.mean())
    assert 0 < fusion.cost < 1
    # all samples skip: the expensive path does not run at all
    with torch.no_grad():
        fusion.gate.bias.fill_(-1e4)
    seen.clear()
    hook = fusion.expensive.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    fused, _ = fusion(v, t)
    hook.remove()
    assert seen == [] and torch.equal(fused, fusion.cheap((v + t) / 2))
