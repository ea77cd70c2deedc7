"""preprocess: colour mode, resize mode, normalisation and text length as configuration (the
research group's: rgb, stretch, mean = std = 0.5, 256 tokens); defaults keep kdsweep's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import ConfigError
from core.schema import PreprocessConfig
from models.backbone_base import VisionBackbone
from pipeline.config.identity import teacher_hash
from pipeline.config.loader import config_hash, load_experiment
from pipeline.data import images
from pipeline.training.run import build_model, prepare
from support import tiny_overrides

GROUP = [
    "preprocess.color=rgb",
    "preprocess.resize=stretch",
    "preprocess.normalize=given",
    "preprocess.mean=[0.25]",
    "preprocess.std=[0.75, 0.75, 0.75]",
    "preprocess.text_max_length=6",
]


def test_defaults_keep_todays_hashes_and_the_groups_settings_change_the_teacher(synth_wound):
    plain = load_experiment("default", tiny_overrides(synth_wound))
    explicit = load_experiment(
        "default", [*tiny_overrides(synth_wound), "preprocess.color=dataset", "preprocess.resize=letterbox"]
    )
    assert plain.preprocess == PreprocessConfig() == explicit.preprocess
    assert config_hash(plain) == config_hash(explicit) and teacher_hash(plain) == teacher_hash(explicit)
    group = load_experiment("default", [*tiny_overrides(synth_wound), "preprocess.resize=stretch"])
    assert teacher_hash(group) != teacher_hash(plain)  # the teacher saw other pixels: no reuse


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "preprocess.mean=[0.5, 0.5]",
            "preprocess.mean: expected 1 or 3 values (one per channel), got [0.5, 0.5]",
        ),
        ("preprocess.std=[0]", "preprocess.std: expected values > 0, got [0.0]"),
        ("preprocess.resize=crop", "preprocess.resize: expected one of letterbox, stretch, got 'crop'"),
        ("preprocess.color=grey", "preprocess.color: expected one of dataset, rgb, gray, got 'grey'"),
        ("preprocess.text_max_length=0", "preprocess.text_max_length: expected a value >= 1 or null, got 0"),
    ],
)
def test_bad_values_are_one_line_config_errors(override, expected):
    with pytest.raises(ConfigError) as info:
        load_experiment("default", [override])
    assert str(info.value) == f"override {override!r}: {expected}"


def test_the_groups_preprocessing_reaches_the_tensors_and_both_backbones(synth_medpix):
    cfg = load_experiment("default", [*tiny_overrides(synth_medpix), "dataset=synthetic-medpix", *GROUP])
    data, _ = prepare(cfg, say=lambda _: None)
    assert data.channels == 3  # gray scans as RGB
    assert data.splits["train"].t["image"].shape[1:] == (3, 32, 32)
    for role in ("teacher", "student"):
        assert data.splits["dev"].t[f"input_ids_{role}"].shape[1] == 6  # one length for both roles
        vision = [
            m
            for m in build_model(getattr(cfg, role), data, role, 0).modules()
            if isinstance(m, VisionBackbone)
        ]
        assert vision and all(torch.equal(m.mean.flatten(), torch.full((3,), 0.25)) for m in vision)
        assert all(torch.equal(m.std.flatten(), torch.full((3,), 0.75)) for m in vision)
    default, _ = prepare(
        load_experiment("default", tiny_overrides(synth_medpix) + ["dataset=synthetic-medpix"])
    )
    assert default.channels == 1 and default.normalize is None  # MedPix today: grayscale, own mean/std
    own = next(
        m for m in build_model(cfg.teacher, default, "teacher", 0).modules() if isinstance(m, VisionBackbone)
    )
    assert not torch.equal(own.std.flatten(), torch.full((3,), 0.75))


def test_gray_on_colour_photographs(synth_wound):
    cfg = load_experiment("default", [*tiny_overrides(synth_wound), "preprocess.color=gray"])
    data, _ = prepare(cfg, say=lambda _: None)
    assert data.channels == 1 and data.splits["test"].t["image"].shape[1] == 1


def test_stretch_and_letterbox_are_cached_apart(tmp_path, kdsweep_cache):
    path = tmp_path / "wide.png"
    Image.new("RGB", (40, 20), (200, 100, 50)).save(path)
    box = images.ImageSet([path], 16, 3)
    stretch = images.ImageSet([path], 16, 3, "stretch")
    assert box.key == images.content_key([path], 16, 3)  # letterbox keeps the key it always had
    assert stretch.key != box.key
    assert box.array[0, :, 0].max() == 0 and box.array[0, 0, 8, 8] == 200  # black bars above and below
    np.testing.assert_array_equal(stretch.array[0, 0], np.full((16, 16), 200))  # filled, no bars
    box.save(), stretch.save()
    assert len(list(kdsweep_cache.glob("images-*.npy"))) == 2
