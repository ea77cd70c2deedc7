"""Backbones, the model class, the frozen teacher, and one distillation step per registered
loss and fusion (parametrised over the registries, so a new entry is tested for free)."""

from __future__ import annotations

import pytest
import torch

from core.errors import ConfigError
from core.schema import TextConfig, TokenizerConfig, VisionConfig
from losses import LOSSES
from models.backbones import build_text, build_vision
from models.fusions import FUSIONS
from models.model import FrozenTeacher, KDModel
from pipeline.config.loader import load_experiment
from pipeline.data.dataset import load_data
from pipeline.training.run import build_model, loss_context
from support import tiny_overrides


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, synth_wound):
    cfg = load_experiment("default", tiny_overrides(synth_wound))
    tok = {"teacher": cfg.teacher.text.tokenizer, "student": cfg.student.text.tokenizer}
    data = load_data(cfg.dataset, 32, tok)
    batch = next(iter(data.loader("train", 8, shuffle=True)))
    return cfg, data, batch


def _student_with(cfg, data, fusion: str, modalities: str = "both") -> KDModel:
    m = cfg.student
    m = type(m)(
        **{
            **m.__dict__,
            "fusion": type(m.fusion)(**{**m.fusion.__dict__, "name": fusion}),
            "modalities": modalities,
        }
    )
    return KDModel(m, data.kind, len(data.tokenizers["student"]), data.channels, "student")


@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_model_forward_each_fusion(tiny, fusion):
    cfg, data, batch = tiny
    model = _student_with(cfg, data, fusion)
    out = model(batch)
    for task, k in data.num_classes().items():
        assert out.logits[task].shape == (8, k)
        assert torch.isfinite(out.logits[task]).all()
    assert out.fused.shape == out.image.shape == out.text.shape == (8, cfg.student.fusion.dim)
    model.eval()
    with torch.no_grad():
        a, b = model(batch), model(batch)
    for task in data.tasks:  # evaluation is deterministic, routing fusions included
        assert torch.equal(a.logits[task], b.logits[task])


@pytest.mark.parametrize("modalities", ["image", "text"])
def test_single_modality_ablation(tiny, modalities):
    cfg, data, batch = tiny
    model = _student_with(cfg, data, "cross_attention", modalities)
    out = model(batch)
    assert (model.vision is None) == (modalities == "text") and (model.text is None) == (
        modalities == "image"
    )
    assert model.fusion is None
    assert out.fused is (out.image if modalities == "image" else out.text)


@pytest.mark.parametrize("loss_name", [n for n in LOSSES.names() if "multiclass" in LOSSES.get(n).kinds])
def test_distillation_step_each_loss(tiny, loss_name):
    """Gradients reach the student (and the loss's projections), never the teacher; the
    teacher stays in eval mode even when .train() is called on it."""
    cfg, data, batch = tiny
    teacher = FrozenTeacher(build_model(cfg.teacher, data, "teacher", 0))
    student = build_model(cfg.student, data, "student", 1)
    loss_cfg = type(cfg.loss)(**{**cfg.loss.__dict__, "name": loss_name})
    loss_fn = LOSSES.get(loss_name)(loss_cfg, loss_context(data, student, teacher.model))
    student.train()
    teacher.train()
    loss_fn.train()
    assert not teacher.training and not teacher.model.training
    assert not any(p.requires_grad for p in teacher.parameters())
    terms = loss_fn(student(batch), teacher(batch), batch["labels"], batch["index"])
    total = sum(terms.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in teacher.parameters())
    grads = [p.grad for p in student.heads.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if loss_name not in ("none", "terms"):  # `terms` without a list: the label term alone
        assert "kd" in terms
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.vision.parameters())


def test_vision_backbones_from_config():
    for name in ("efficientnet_b0", "mobilenetv3_small_100"):
        bb = build_vision(VisionConfig(name=name, image_size=32), channels=1, key="student.vision")
        feats = bb(torch.randint(0, 255, (2, 1, 32, 32), dtype=torch.uint8))
        assert feats.shape == (2, bb.out_dim) and torch.isfinite(feats).all()


def test_unknown_timm_model_is_a_config_error():
    with pytest.raises(
        ConfigError, match=r"student.vision.name: unknown timm model 'vit_tiny_pach16_224'.*closest"
    ):
        build_vision(VisionConfig(name="vit_tiny_pach16_224"), channels=3, key="student.vision")


def test_text_backbone_pretrained_from_local_folder(minilm_dir):
    """A real pretrained MiniLM-L6 (BERT) and its tokenizer, loaded offline from a folder."""
    from pipeline.data.text import load_tokenizer

    tok = load_tokenizer(TokenizerConfig(name=str(minilm_dir), max_length=32), [])
    bb = build_text(TextConfig(name=str(minilm_dir), pretrained=True), len(tok), key="teacher.text")
    enc = tok(
        ["chest CT", "CT scan of the thorax", "a recipe for sourdough bread"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        e = torch.nn.functional.normalize(bb(enc["input_ids"], enc["attention_mask"]), dim=-1)
    assert e.shape == (3, 384)
    # pretrained weights, not a random init: related sentences are closer than unrelated ones
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_text_backbone_from_config_matches_vocab():
    bb = build_text(
        TextConfig(name="distilbert", config={"dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64}),
        500,
        key="student.text",
    )
    assert bb.net.get_input_embeddings().num_embeddings == 500 and bb.out_dim == 32


def test_minilm_profile_builds_its_pretrained_teacher_offline(synth_medpix, minilm_dir, monkeypatch):
    """profiles/minilm.yaml: MINILM_DIR -> the local all-MiniLM-L6-v2 folder, loaded with its weights."""
    from pipeline.config.loader import load_experiment
    from pipeline.training.run import build_model, prepare

    monkeypatch.setenv("MINILM_DIR", str(minilm_dir))
    cfg = load_experiment("default", ["dataset=medpix", f"dataset.root={synth_medpix}", "profile=minilm"])
    assert cfg.teacher.text.name == str(minilm_dir) and cfg.teacher.text.pretrained
    data, _ = prepare(cfg, lambda _: None)
    teacher = build_model(cfg.teacher, data, "teacher", 0)
    assert len(data.tokenizers["teacher"]) == 30522  # MiniLM's own vocabulary, not a trained one
    n_text = sum(p.numel() for p in teacher.text.parameters())
    assert 22e6 < n_text < 23e6
