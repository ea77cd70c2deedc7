"""`modality_dropout` (the group's wound fusion): whole-batch drops at the stated rates, the
per-sample option, nothing dropped in eval, shape, gradients, and its `fusion.params` in YAML.
The generic checks (shape, eval determinism, gradients to every parameter) also run for it in
tests/test_fusions.py, which is parametrised over the registry."""

from __future__ import annotations

import pytest
import torch

from core.errors import ConfigError
from core.schema import FusionConfig
from models.fusions import FUSIONS, build_fusion

DIM = 8


def fusion(**params) -> torch.nn.Module:
    torch.manual_seed(0)
    return FUSIONS.get("modality_dropout")(dim=DIM, **params)


def inputs(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, DIM, generator=g) + 3, torch.randn(batch, DIM, generator=g) - 3


def cases(f, v, t) -> dict[tuple[bool, bool], torch.Tensor]:
    """The output for each (image kept, text kept), computed from the MLP directly."""
    with torch.no_grad():
        return {
            (ki, kt): f.mlp(torch.cat([v * ki, t * kt], -1)) for ki in (True, False) for kt in (True, False)
        }


def which(out: torch.Tensor, ref: dict) -> list[tuple[bool, bool]]:
    """Per sample, the (image kept, text kept) case its output equals (exactly one)."""
    found = []
    for i in range(out.shape[0]):
        hits = [k for k, r in ref.items() if torch.allclose(out[i], r[i], atol=1e-6)]
        assert len(hits) == 1, f"sample {i} matches {hits}"
        found.append(hits[0])
    return found


def test_defaults_are_the_group_s():
    f = fusion()
    assert (f.p_img, f.p_txt, f.per_sample) == (0.3, 0.3, False)
    assert [type(m) for m in f.mlp] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert (f.mlp[0].in_features, f.mlp[0].out_features, f.mlp[2].out_features) == (2 * DIM, DIM, DIM)


def test_per_batch_drops_whole_batches_at_the_stated_rates():
    f = fusion(p_img=0.3, p_txt=0.3).train()
    v, t = inputs(6)
    ref = cases(f, v, t)
    torch.manual_seed(123)
    n, seen = 2000, []
    with torch.no_grad():
        for _ in range(n):
            per_sample = which(f(v, t)[0], ref)
            assert len(set(per_sample)) == 1, "a per-batch drop hits every sample alike"
            seen.append(per_sample[0])
    img_dropped = sum(not ki for ki, _ in seen) / n
    txt_dropped = sum(not kt for _, kt in seen) / n
    both = sum(not ki and not kt for ki, kt in seen) / n
    # binomial standard deviation at n=2000 is about 0.010 (0.3) and 0.0064 (0.09): 4 sigma
    assert abs(img_dropped - 0.3) < 0.04 and abs(txt_dropped - 0.3) < 0.04
    assert abs(both - 0.09) < 0.026  # independent draws: p_img * p_txt


def test_rates_follow_the_options():
    f = fusion(p_img=0.8, p_txt=0.0).train()
    torch.manual_seed(5)
    keeps = [f.keep_masks(4, torch.zeros(4, DIM)) for _ in range(1000)]
    assert all(ki.shape == (1, 1) and kt.shape == (1, 1) for ki, kt in keeps)
    assert abs(sum(float(ki) == 0 for ki, _ in keeps) / 1000 - 0.8) < 0.05
    assert all(float(kt) == 1 for _, kt in keeps)


def test_per_batch_is_repeatable_with_a_seed():
    f = fusion().train()
    v, t = inputs(4)
    torch.manual_seed(7)
    a = [f(v, t)[0] for _ in range(20)]
    torch.manual_seed(7)
    b = [f(v, t)[0] for _ in range(20)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_per_sample_drops_samples_independently():
    f = fusion(p_img=0.5, p_txt=0.5, per_sample=True).train()
    v, t = inputs(64)
    ref = cases(f, v, t)
    torch.manual_seed(0)
    with torch.no_grad():
        seen = [c for _ in range(20) for c in which(f(v, t)[0], ref)]
    n = len(seen)
    assert abs(sum(not ki for ki, _ in seen) / n - 0.5) < 0.05
    assert abs(sum(not kt for _, kt in seen) / n - 0.5) < 0.05
    mixed = 0
    torch.manual_seed(1)
    with torch.no_grad():
        for _ in range(20):
            mixed += len(set(which(f(v, t)[0], ref))) > 1
    assert mixed == 20  # 64 samples at p=0.5: a batch that all agree is (virtually) impossible
    ki, kt = f.keep_masks(64, v)
    assert ki.shape == kt.shape == (64, 1)


@pytest.mark.parametrize("per_sample", [False, True])
def test_eval_drops_nothing(per_sample):
    f = fusion(p_img=1.0, p_txt=1.0, per_sample=per_sample).eval()
    v, t = inputs(5)
    out, aux = f(v, t)
    assert aux == {}
    torch.testing.assert_close(out, cases(f, v, t)[(True, True)])
    f.train()  # p = 1: in training both are always dropped
    torch.testing.assert_close(f(v, t)[0], cases(f, v, t)[(False, False)])


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("per_sample", [False, True])
def test_output_shape(batch, per_sample):
    for mode in (True, False):
        out, _ = fusion(per_sample=per_sample).train(mode)(*inputs(batch))
        assert out.shape == (batch, DIM) and torch.isfinite(out).all()


def test_gradients_flow_to_kept_modalities_only():
    f = fusion(p_img=0.0, p_txt=0.0).train()
    v, t = (x.requires_grad_(True) for x in inputs(4))
    f(v, t)[0].sum().backward()
    assert v.grad.abs().sum() > 0 and t.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in f.parameters())
    f = fusion(p_img=1.0, p_txt=0.0).train()  # the image is always dropped
    v, t = (x.requires_grad_(True) for x in inputs(4))
    f(v, t)[0].sum().backward()
    assert torch.equal(v.grad, torch.zeros_like(v)) and t.grad.abs().sum() > 0


def test_yaml_params_reach_the_fusion_and_are_checked():
    built = build_fusion(
        FusionConfig(name="modality_dropout", dim=DIM, params={"p_img": 0.1, "per_sample": True}),
        "student.fusion",
    )
    assert (built.p_img, built.p_txt, built.per_sample) == (0.1, 0.3, True)
    with pytest.raises(ConfigError, match=r"student.fusion.params.p_txt: expected a value in \[0, 1\]"):
        build_fusion(FusionConfig(name="modality_dropout", dim=DIM, params={"p_txt": 2}), "student.fusion")
    with pytest.raises(
        ConfigError, match=r"student.fusion.params.p_img: unknown key \(this section takes no keys"
    ):
        build_fusion(FusionConfig(name="gated", dim=DIM, params={"p_img": 0.1}), "student.fusion")


def test_params_are_checked_when_the_config_loads():
    from pipeline.config.loader import config_hash, load_experiment

    base = ["student.fusion.name=modality_dropout"]
    with pytest.raises(
        ConfigError, match=r"student.fusion.params.per_sampel: unknown key \(closest: per_sample"
    ):
        load_experiment("default", [*base, "student.fusion.params.per_sampel=true"])
    plain = load_experiment("default", base)
    set_ = load_experiment("default", [*base, "student.fusion.params.per_sample=true"])
    assert plain.student.fusion.params == {} and set_.student.fusion.params == {"per_sample": True}
    assert config_hash(plain) != config_hash(set_)  # an option that is set is part of the hash
