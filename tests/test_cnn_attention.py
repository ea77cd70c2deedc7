"""CNN students with spatial self-attention (X-Lite): shapes, gradients, the position
embedding (interpolation, and that it makes the output depend on where features are),
checkpoints, and model_stats. Everything is built with pretrained=False: no hub access."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.errors import ConfigError
from models.cnn_attention import CNNFeatureMap, ImageEncoder, SpatialMHSA, model_stats

# Tiny profile: timm's 82k-parameter test EfficientNet builds and runs in milliseconds on CPU.
TINY = "test_efficientnet"
SIZE = 64  # /32 reduction -> a 2x2 grid


@pytest.fixture(autouse=True)
def _seed_one_thread():
    # One thread: these kernels are tiny, and on a busy 2-core runner (a parallel test run)
    # OpenMP threads contend and make batch-1 passes ~10x slower. Restored after each test.
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("attention", ["none", "mhsa"])
@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_encoder_shapes(attention, channels):
    enc = ImageEncoder(TINY, channels, attention, attn_dim=32, attn_heads=4, attn_layers=2)
    out = enc(torch.randn(3, channels, SIZE, SIZE))
    expected = 32 if attention == "mhsa" else enc.cnn.out_channels
    assert enc.out_dim == expected
    assert out.shape == (3, expected)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenetv3_small_100"])
@pytest.mark.parametrize("attention", ["none", "mhsa"])
def test_study_students_shapes(name, attention):
    enc = ImageEncoder(name, 1, attention, attn_dim=64, attn_heads=4).eval()
    fmaps = []
    enc.cnn.register_forward_hook(lambda mod, args, out: fmaps.append(out.shape))
    with torch.inference_mode():  # one forward: these are the slow models of this file
        out = enc(torch.randn(1, 1, SIZE, SIZE))
    assert fmaps == [(1, enc.cnn.out_channels, SIZE // 32, SIZE // 32)]
    assert enc.out_dim == (64 if attention == "mhsa" else enc.cnn.out_channels)
    assert out.shape == (1, enc.out_dim)


def test_gradients_reach_cnn_through_attention():
    enc = ImageEncoder(TINY, 1, "mhsa", attn_dim=32, attn_heads=4)
    enc(torch.randn(2, 1, SIZE, SIZE)).pow(2).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None, name
    stem = enc.cnn.net.conv_stem.weight.grad
    assert stem.abs().sum() > 0  # the first conv, so the whole CNN is on the graph
    assert enc.attn.pos_embed.grad.abs().sum() > 0


def test_position_embedding_interpolates():
    attn = SpatialMHSA(8, dim=16, heads=4, max_grid=6)
    assert attn.position_embedding(6, 6) is attn.pos_embed  # native grid: no resampling
    with torch.no_grad():  # channel 0 ramps along width, channel 1 along height
        ramp = torch.arange(6.0)
        attn.pos_embed[0, 0] = ramp.view(1, 6).expand(6, 6)
        attn.pos_embed[0, 1] = ramp.view(6, 1).expand(6, 6)
        attn.pos_embed[0, 2] = 0.5
    pe = attn.position_embedding(3, 5)
    assert pe.shape == (1, 16, 3, 5)
    # Bilinear keeps constants and monotone ramps: catches a swapped height/width.
    torch.testing.assert_close(pe[0, 2], torch.full((3, 5), 0.5))
    assert (pe[0, 0].diff(dim=1) > 0).all() and torch.allclose(pe[0, 0].diff(dim=0), torch.zeros(2, 5))
    assert (pe[0, 1].diff(dim=0) > 0).all() and torch.allclose(pe[0, 1].diff(dim=1), torch.zeros(3, 4))
    # The module runs on grids smaller and larger than max_grid, and learns from both.
    for h, w in [(2, 2), (3, 5), (9, 7)]:
        attn.zero_grad()
        out = attn(torch.randn(2, 8, h, w))
        assert out.shape == (2, 16)
        # Not out.sum(): a LayerNorm output sums to a constant, so its gradient is zero.
        (out * torch.randn_like(out)).sum().backward()
        assert attn.pos_embed.grad.abs().sum() > 0


def _shuffle_positions(features: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    b, c, h, w = features.shape
    return features.flatten(2)[:, :, perm].reshape(b, c, h, w)


def test_output_depends_on_positions():
    attn = SpatialMHSA(8, dim=16, heads=4, layers=2).eval()
    features = torch.randn(2, 8, 4, 4)
    perm = torch.randperm(16)
    shuffled = _shuffle_positions(features, perm)
    assert not torch.equal(features, shuffled)
    with torch.no_grad():
        a, b = attn(features), attn(shuffled)
        assert (a - b).abs().max() > 1e-3  # same features at other places: another output
        # Control: without the position embedding, self-attention + mean pooling is a set
        # function, so the shuffle is invisible. The difference above is the embedding's.
        attn.pos_embed.zero_()
        torch.testing.assert_close(attn(features), attn(shuffled), atol=1e-5, rtol=1e-5)


def test_heads_must_divide_dim():
    with pytest.raises(ValueError, match=r"heads \(3\).*dim \(16\)"):
        SpatialMHSA(8, dim=16, heads=3)
    with pytest.raises(ValueError, match=r"heads \(3\).*dim \(16\)"):
        ImageEncoder(TINY, 1, "mhsa", attn_dim=16, attn_heads=3)


def test_unknown_attention_lists_valid_values():
    with pytest.raises(ValueError, match="none, mhsa.*'cbam'"):
        ImageEncoder(TINY, 1, "cbam")


def test_unknown_timm_name_is_one_config_line():
    with pytest.raises(ConfigError, match="'efficientnet_bo' \\(closest: efficientnet_b") as e:
        CNNFeatureMap("efficientnet_bo")
    assert "\n" not in str(e.value)


def test_checkpoint_roundtrip_and_mismatch(tmp_path):
    src = CNNFeatureMap(TINY, 1)
    path = tmp_path / "cnn.pt"
    torch.save(src.state_dict(), path)
    x = torch.randn(1, 1, SIZE, SIZE)
    loaded = ImageEncoder(TINY, 1, checkpoint=path).eval()
    torch.testing.assert_close(loaded.cnn(x), src.eval()(x), rtol=0, atol=0)

    torch.save({"state_dict": src.state_dict()}, path)  # the common training-script wrapper
    CNNFeatureMap(TINY, 1, checkpoint=path)
    with pytest.raises(ConfigError, match="does not match.*wrongly shaped") as e:
        CNNFeatureMap(TINY, 3, checkpoint=path)  # 1-channel stem into a 3-channel one
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="does not match 'mobilenetv3_small_050'"):
        CNNFeatureMap("mobilenetv3_small_050", 1, checkpoint=path)
    with pytest.raises(ConfigError, match="cannot read"):
        CNNFeatureMap(TINY, 1, checkpoint=tmp_path / "absent.pt")


def test_model_stats():
    # 32 px and tiny widths: 63 passes must stay fast on a loaded 2-core CI machine.
    enc = ImageEncoder(TINY, 1, "mhsa", attn_dim=16, attn_heads=2).train()
    calls = []
    enc.register_forward_hook(lambda mod, args, out: calls.append((mod.training, args[0].shape[0])))
    stats = model_stats(enc, torch.randn(4, 1, 32, 32), runs=60, warmup=3)

    assert len(calls) == 63 and stats["latency_runs"] == 60  # every timed pass is counted
    assert all(not training and batch == 1 for training, batch in calls)  # eval, batch 1
    assert enc.training  # the caller's mode is restored
    assert stats["params"] == sum(p.numel() for p in enc.parameters())
    n_bytes = sum(t.numel() * t.element_size() for t in [*enc.parameters(), *enc.buffers()])
    assert stats["size_mb"] == pytest.approx(n_bytes / 2**20)
    assert stats["size_mb"] > stats["params"] * 4 / 2**20  # buffers (BN statistics) count too
    assert 0 < stats["latency_ms"] < 10_000
    with pytest.raises(ValueError, match="runs must be >= 50"):
        model_stats(enc, torch.randn(1, 1, 32, 32), runs=10)


def test_model_stats_accepts_a_batch_mapping():
    class Wrapped(nn.Module):  # KDModel's calling convention: one dict of tensors
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 2)

        def forward(self, batch):
            assert batch["image"].shape == (1, 4) and batch["label"].shape == (1,)  # first row only
            return self.linear(batch["image"])

    stats = model_stats(Wrapped(), {"image": torch.randn(3, 4), "label": torch.zeros(3)})
    assert stats["latency_runs"] == 50 and stats["params"] == 10
