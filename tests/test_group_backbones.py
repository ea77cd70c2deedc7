"""The research group's backbones (profile `group`, study `students`), built offline: the study's
own sections with `pretrained: false`, so timm builds its nets from its definitions and the text
encoders come from their hub ids' architectures (models/group_backbones.py), random weights and
no hub (HF_HUB_OFFLINE=1). Full size, tiny inputs: whole-model parameter counts are checked
against the group's published ones (shared/reference/README.md, "Tuned recipe"), which the grid's
16 span from 6.3 M (MobileViT-XXS + BERT-tiny; their table's smallest, 13.1 M, is MobileViT-XXS
+ BERT-mini) to 89.1 M (DeiT-small + DistilBERT; theirs 89.3 M with HF DeiT's pooler)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from pathlib import Path

import pytest
import torch
import yaml

import models.model
from core.errors import ConfigError
from core.schema import ModelConfig, TextConfig, VisionConfig
from core.validate import parse
from models.backbones import build_text, build_vision
from models.group_backbones import TEXT_ARCHITECTURES, VISION_HUB_IDS, text_architecture
from models.model import KDModel
from pipeline.config.loader import load_experiment
from tasks import TASK_KINDS

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
SPACE = yaml.safe_load((SWEEPS / "students.yaml").read_text())["space"]
STUDENTS = list(itertools.product(SPACE["student.vision"], SPACE["student.text"]))
# The group's whole-student counts (M), fusion width 256: the nine students of their table
REFERENCE_M = {
    ("mobilevit_xxs", "prajjwal1/bert-mini"): 13.1,
    ("deit_tiny_patch16_224", "prajjwal1/bert-mini"): 17.6,
    ("deit_small_patch16_224", "prajjwal1/bert-tiny"): 27.1,
    ("deit_tiny_patch16_224", "nreimers/MiniLM-L6-H384-uncased"): 29.2,
    ("deit_small_patch16_224", "prajjwal1/bert-mini"): 33.9,
    ("deit_small_patch16_224", "nreimers/MiniLM-L6-H384-uncased"): 45.5,
    ("mobilevit_s", "distilbert-base-uncased"): 72.5,
    ("deit_tiny_patch16_224", "distilbert-base-uncased"): 73.0,
    ("deit_small_patch16_224", "distilbert-base-uncased"): 89.3,
}
# Wound's tasks (type: 10 classes, severity: 3): the heads are part of a whole student
WOUND = TASK_KINDS.get("multiclass")(
    {
        "type": [
            "Abrasion",
            "Bruises",
            "Burn",
            "Cut",
            "Diabetic",
            "Laceration",
            "Normal",
            "Pressure",
            "Surgical",
            "Venous",
        ],
        "severity": ["Mild", "Moderate", "Severe"],
    }
)


def offline(m: ModelConfig, vision: dict | None = None, text: dict | None = None) -> ModelConfig:
    """`m` with the given sections (a study's YAML), both backbones at `pretrained: false`."""
    v = parse(VisionConfig, {**vision, "pretrained": False}) if vision else m.vision
    t = parse(TextConfig, {**text, "pretrained": False}) if text else m.text
    return dataclasses.replace(
        m,
        vision=dataclasses.replace(v, pretrained=False),
        text=dataclasses.replace(t, pretrained=False),
    )


def batch(vocab: int, role: str, n: int = 2, tokens: int = 12) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(n, tokens, dtype=torch.long)
    mask[1, tokens // 2 :] = 0
    return {
        "image": torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        f"input_ids_{role}": torch.randint(0, vocab, (n, tokens), generator=g),
        f"attention_mask_{role}": mask,
    }


def run_one_batch(m: ModelConfig, role: str) -> KDModel:
    vocab = text_architecture(m.text.name, f"{role}.text")["vocab_size"]  # the hub tokenizer's size
    torch.manual_seed(0)
    model = KDModel(m, WOUND, vocab, 3, role).eval()
    with torch.no_grad():
        out = model(batch(vocab, role))
    assert out.logits["type"].shape == (2, 10) and out.logits["severity"].shape == (2, 3)
    assert all(torch.isfinite(x).all() for x in out.logits.values())
    assert out.fused.shape == (2, m.fusion.dim)
    return model


@pytest.fixture(scope="module")
def group():
    return load_experiment("default", ["profile=group"])


def test_the_profile_names_the_group_s_real_backbones(group):
    t, s = group.teacher, group.student
    assert (t.vision.name, t.text.name) == (
        "vit_base_patch16_224.orig_in21k_ft_in1k",
        "emilyalsentzer/Bio_ClinicalBERT",
    )
    assert VISION_HUB_IDS[t.vision.name] == "google/vit-base-patch16-224"
    assert (s.vision.name, s.text.name) == ("mobilevit_xxs", "prajjwal1/bert-mini")
    for m in (t, s):
        assert m.vision.pretrained and m.text.pretrained and m.vision.image_size == 224
        assert m.text.tokenizer.name == m.text.name and m.text.tokenizer.max_length == 256
        assert m.fusion.dim == 256
    assert (group.train.batch_size, group.train.student_epochs, group.train.lr) == (16, 10, 3e-4)
    assert (group.train.lr_for("teacher"), group.train.lr_for("student")) == (1e-5, 3e-4)


def test_the_study_holds_their_sixteen_students_as_real_hub_ids():
    assert len(STUDENTS) == 16 and SPACE["loss.name"] == ["combined", "none"]
    assert {v["name"] for v, _ in STUDENTS} == {
        "deit_tiny_patch16_224",
        "deit_small_patch16_224",
        "mobilevit_s",
        "mobilevit_xxs",
    }
    for v, t in STUDENTS:
        assert v["name"] in VISION_HUB_IDS and t["name"] in TEXT_ARCHITECTURES
        assert v["pretrained"] and t["pretrained"] and v["image_size"] == 224
        assert t["tokenizer"] == {"name": t["name"], "max_length": 256}


@pytest.fixture(scope="module")
def built() -> dict:
    return {}


@pytest.fixture
def shared_backbones(built, monkeypatch):
    """The 16 students are 4 vision x 4 text nets: each net is built (and randomly initialised,
    most of a full-size build's 5-20 s on 2 cores) once, and every whole student that uses it
    gets a copy; its fusion and heads are built fresh."""

    def cached(build):
        def wrapper(cfg, *args, **kwargs):
            key = (build.__name__, repr(cfg), args, tuple(sorted(kwargs.items())))
            if key not in built:
                built[key] = build(cfg, *args, **kwargs)
            return copy.deepcopy(built[key])

        return wrapper

    monkeypatch.setattr(models.model, "build_vision", cached(models.model.build_vision))
    monkeypatch.setattr(models.model, "build_text", cached(models.model.build_text))


@pytest.mark.slow  # full-size: the 8 nets once, then a copy per student
@pytest.mark.parametrize(
    ("vision", "text"), STUDENTS, ids=[f"{v['name']}+{t['name'].split('/')[-1]}" for v, t in STUDENTS]
)
def test_each_student_builds_offline_and_runs_a_batch(group, vision, text, shared_backbones):
    model = run_one_batch(offline(group.student, vision, text), "student")
    n = sum(p.numel() for p in model.parameters()) / 1e6
    key = (vision["name"], text["name"])
    if key in REFERENCE_M:  # the group's count, within what HF's DeiT pooler adds (0.15 M)
        assert abs(n - REFERENCE_M[key]) < 0.25, f"{n:.2f} M against the group's {REFERENCE_M[key]} M"
    # the grid's range: MobileViT-XXS + BERT-tiny (6.3 M) to DeiT-small + DistilBERT (89.1 M)
    assert 6.0 < n < 89.5


@pytest.mark.slow  # 194 M parameters: about 15 s on 2 cores
def test_the_teacher_builds_offline_from_its_architecture(group):
    """ViT-B/16 (timm, 86 M) + Bio_ClinicalBERT (BERT-base, cased vocabulary of 28996, 108 M)."""
    model = run_one_batch(offline(group.teacher), "teacher")
    net, bert = model.vision.net, model.text.net.config
    assert (net.patch_embed.patch_size, net.embed_dim, len(net.blocks)) == ((16, 16), 768, 12)
    assert (bert.model_type, bert.hidden_size, bert.num_hidden_layers, bert.vocab_size) == (
        "bert",
        768,
        12,
        28996,
    )
    vision_m = sum(p.numel() for p in model.vision.parameters()) / 1e6
    text_m = sum(p.numel() for p in model.text.parameters()) / 1e6
    assert 85.5 < vision_m < 86.0 and 108.0 < text_m < 108.5


def test_an_unknown_text_backbone_lists_the_valid_names():
    with pytest.raises(ConfigError) as err:
        build_text(TextConfig(name="prajwal1/bert-mini"), 30522, key="student.text")
    assert str(err.value).startswith("student.text.name: cannot build text model 'prajwal1/bert-mini'")
    for name in TEXT_ARCHITECTURES:
        assert name in str(err.value)
    with pytest.raises(ConfigError, match=r"no offline architecture for 'bert-small' \(valid: distilbert"):
        text_architecture("bert-small", "student.text")


def test_a_hub_id_as_vision_name_gets_its_timm_name():
    with pytest.raises(ConfigError, match="timm's name for these weights is 'mobilevit_xxs'"):
        build_vision(VisionConfig(name="apple/mobilevit-xx-small"), channels=3, key="student.vision")


def test_pretrained_hub_id_offline_says_how_to_build_it_without_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="`pretrained: false` builds its architecture offline"):
        build_text(TextConfig(name="prajjwal1/bert-tiny", pretrained=True), 30522, key="student.text")
