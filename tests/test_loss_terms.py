"""Losses as weighted sums of named terms (`loss.name: terms`, losses/terms/): each preset equals
its term list on identical tensors, with the same projections when built from the same seed
(so a seeded run gives the same numbers: tests/test_pinned_metrics.py runs the lists too);
gradients agree; the config refuses two terms with one name, unknown terms and options."""

from __future__ import annotations

import pytest
import torch

from core.errors import ConfigError
from core.schema import LossConfig
from losses import LOSSES, LossContext
from models.outputs import ModelOutput
from pipeline.config.loader import load_experiment, parse
from tasks import TASK_KINDS

TASKS, CLASSES, S_DIM, T_DIM, B = ("a", "b"), {"a": 3, "b": 4}, 8, 12, 6


def preset_terms(name: str, alpha: float, beta: float) -> list[dict]:
    """The term list of a preset at its alpha and beta (its other options at their defaults)."""
    kd = [
        {"term": "label", "name": "ce", "weight": 1 - alpha},
        {"term": "logit_kd", "name": "kd", "weight": alpha},
    ]
    group = [{"term": "label", "name": "ce", "weight": 1.0}, kd[1]]
    fixed = {"metric": "mse", "project": "teacher", "trained": False}
    return {
        "none": [{"term": "label", "name": "ce", "weight": 1.0}],
        "vanilla": kd,
        "combined": kd
        + [
            {"term": "align", "name": f"align_{m}", "weight": beta * 0.5, "params": {"feature": m}}
            for m in ("image", "text")
        ],
        "rkd": kd
        + [
            {"term": "rkd_distance", "name": "rkd_dist", "weight": beta * 25.0},
            {"term": "rkd_angle", "name": "rkd_angle", "weight": beta * 50.0},
        ],
        "mmd": kd + [{"term": "mmd", "name": "mmd", "weight": beta * 5.0}],
        # logged as crd_student and crd_teacher (the term's two parts)
        "crd": kd + [{"term": "crd", "weight": beta * 0.1, "params": {"feat_dim": 128, "nce_k": 4096}}],
        "group_vanilla": group
        + [
            {"term": "align", "name": f"mse_{m}", "weight": beta, "params": {"feature": m, **fixed}}
            for m in ("image", "text")
        ],
        "group_combined": group
        + [
            {"term": "align", "name": f"mse_{m}", "weight": beta, "params": {"feature": m, **fixed}}
            for m in ("image", "text")
        ]
        + [
            {
                "term": "infonce",
                "name": "infonce",
                "weight": 10.0,
                "params": {"project": "teacher", "trained": False},
            }
        ],
    }[name]


PRESETS = ["none", "vanilla", "combined", "crd", "rkd", "mmd", "group_vanilla", "group_combined"]


def _ctx() -> LossContext:
    kind = TASK_KINDS.get("multiclass")({t: tuple(map(str, range(c))) for t, c in CLASSES.items()})
    counts = {t: (5,) * c for t, c in CLASSES.items()}
    return LossContext(TASKS, CLASSES, counts, S_DIM, T_DIM, 30, kind)


def _build(cfg: dict, seed: int = 0):
    torch.manual_seed(seed)  # the projections' initialisation
    return LOSSES.get(cfg["name"])(parse(LossConfig, cfg), _ctx())


def _out(dim: int, seed: int, grad: bool = False) -> ModelOutput:
    g = torch.Generator().manual_seed(seed)
    logits = {t: torch.randn(B, c, generator=g, requires_grad=grad) for t, c in CLASSES.items()}
    img, txt, fused = (torch.randn(B, dim, generator=g, requires_grad=grad) for _ in range(3))
    return ModelOutput(logits=logits, image=img, text=txt, fused=fused)


def _labels() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return {t: torch.randint(0, c, (B,), generator=g) for t, c in CLASSES.items()}


def _pair(name: str):
    preset = _build({"name": name})
    c = preset.cfg
    terms = _build(
        {
            "name": "terms",
            "temperature": c.temperature,
            "params": {"terms": preset_terms(name, c.alpha, c.beta)},
        }
    )
    return preset, terms


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_equals_its_term_list(name):
    preset, terms = _pair(name)
    # the same seed gives the same maps, in the same order (a seeded run trains alike)
    want = [p.detach() for p in preset.parameters()]
    got = [p.detach() for p in terms.parameters()]
    assert len(want) == len(got) and all(torch.equal(a, b) for a, b in zip(want, got, strict=True))
    assert [p.requires_grad for p in preset.trained_parameters()] == [
        p.requires_grad for p in terms.trained_parameters()
    ]
    grads = []
    for loss in (preset, terms):
        torch.manual_seed(11)  # crd draws its negatives: the same draws for both
        s, t = _out(S_DIM, 1, grad=True), _out(T_DIM, 2)
        values = loss(s, t, _labels(), torch.arange(B))
        sum(values.values()).backward()
        grads.append((values, [s.image.grad, s.text.grad, s.fused.grad, *(s.logits[k].grad for k in TASKS)]))
    (want_v, want_g), (got_v, got_g) = grads
    assert set(got_v) == set(want_v)
    for k in want_v:
        torch.testing.assert_close(got_v[k], want_v[k], rtol=1e-6, atol=1e-7, msg=k)
    for a, b in zip(want_g, got_g, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_without_a_teacher_only_the_teacher_free_terms_count():
    _, terms = _pair("combined")
    values = terms(_out(S_DIM, 1), None, _labels(), torch.arange(B))
    assert set(values) == {"ce"}


def test_the_formula_lists_every_term_with_its_weight():
    _, terms = _pair("group_combined")
    assert terms.formula() == (
        "L = 1*CE + 1*T^2*KL(T=4) + 100*MSE(s_img, W_img t_img) + 100*MSE(s_txt, W_txt t_txt)"
        " + 10*mean_m InfoNCE(s_m, W_m t_m; tau=0.1, m in {img,txt}) (fixed: teacher_image, teacher_text)"
    )
    # the InfoNCE term shares the MSE terms' fixed maps: two maps, none in the optimiser
    assert len(list(terms.parameters())) == 4 and not list(terms.trained_parameters())


def _load(terms) -> None:
    load_experiment("default", ["loss.name=terms", f"loss.params={{terms: {terms}}}"])


@pytest.mark.parametrize(
    "terms, error",
    [
        ("[{term: label}, {term: label}]", r"loss.params.terms\[1\].name: two terms named 'label'"),
        ("[{term: lable}]", r"loss.params.terms\[0\].term: unknown loss term 'lable' \(valid: align, "),
        (
            "[{term: align, params: {metric: l1}}]",
            r"loss.params.terms\[0\].params.metric: expected one of cosine, mse, got 'l1'",
        ),
        ("[]", r"loss.params.terms: expected at least one term"),
        ("[{term: label, wieght: 1}]", r"loss.params.terms\[0\].wieght: unknown key"),
    ],
)
def test_a_bad_term_list_is_refused_when_the_config_loads(terms, error):
    with pytest.raises(ConfigError, match=error):
        _load(terms)


def test_a_name_that_clashes_with_a_default_name_is_refused_when_built():
    """The label term is logged under its label loss's name (`ce`, `weighted_bce`), which the
    config does not know before the dataset's kind: that clash is caught when the loss is built."""
    with pytest.raises(ValueError, match="two terms named 'ce'"):
        _build(
            {"name": "terms", "params": {"terms": [{"term": "label"}, {"term": "logit_kd", "name": "ce"}]}}
        )


def test_a_good_term_list_loads():
    _load("[{term: label, weight: 0.3}, {term: logit_kd, weight: 0.7}]")


def test_the_readme_example_is_combined_as_terms():
    """The README's `loss.name: terms` example loads, and is `combined` at alpha 0.7, beta 1."""
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "name: terms" in b)
    loss = yaml.safe_load(block)["loss"]
    cfg = load_experiment(
        "default",
        [
            f"loss.name={loss['name']}",
            f"loss.temperature={loss['temperature']}",
            f"loss.params={loss['params']}",
        ],
    )
    assert [dict(t) for t in loss["params"]["terms"]] == [
        {**t, "weight": pytest.approx(t["weight"])} for t in preset_terms("combined", 0.7, 1.0)
    ]
    assert cfg.loss.name == "terms"
