"""The research group's losses (`group_vanilla`, `group_combined`): each equals its formula
computed here with plain torch ops, the group's defaults apply when unset without touching the
hashes of other configs, alpha follows each loss's convention, the fixed W maps stay out of the
optimiser unless `loss.train_params` says otherwise, and every student run records its formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ConfigError
from core.schema import LossConfig, TrainConfig
from losses import LOSSES, LossContext
from losses.composed import TermSpec
from losses.group_vanilla import GroupVanillaKD
from models.outputs import ModelOutput
from pipeline.config.loader import config_hash, flatten, load_experiment, parse, to_dict
from pipeline.training.train import optimizer
from tasks import TASK_KINDS

TASKS, CLASSES, S_DIM, T_DIM, B = ("a", "b"), {"a": 3, "b": 4}, 8, 12, 6


def _ctx() -> LossContext:
    kind = TASK_KINDS.get("multiclass")({t: tuple(map(str, range(c))) for t, c in CLASSES.items()})
    counts = {t: (5,) * c for t, c in CLASSES.items()}
    return LossContext(TASKS, CLASSES, counts, S_DIM, T_DIM, 30, kind)


def _loss(name: str, **cfg):
    return LOSSES.get(name)(parse(LossConfig, {"name": name, **cfg}), _ctx())


def _out(dim: int, seed: int, image: bool = True, text: bool = True) -> ModelOutput:
    g = torch.Generator().manual_seed(seed)
    logits = {t: torch.randn(B, c, generator=g) for t, c in CLASSES.items()}
    img, txt = torch.randn(B, dim, generator=g), torch.randn(B, dim, generator=g)
    return ModelOutput(logits=logits, image=img if image else None, text=txt if text else None, fused=img)


def _labels() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return {t: torch.randint(0, c, (B,), generator=g) for t, c in CLASSES.items()}


def _expected(loss, s: ModelOutput, t: ModelOutput, y, alpha, temp, beta, gamma=None, tau=0.1):
    """The formula, term by term, with torch's own ops and the loss's W weights."""
    ce = sum(F.cross_entropy(s.logits[k], y[k]) for k in TASKS)
    kl = sum(
        F.kl_div(
            F.log_softmax(s.logits[k] / temp, -1), F.softmax(t.logits[k] / temp, -1), reduction="batchmean"
        )
        for k in TASKS
    )
    out = {"ce": ce, "kd": alpha * temp**2 * kl}
    nce = []
    for m, w in (("image", loss.w_image), ("text", loss.w_text)):
        sm, tm = getattr(s, m), getattr(t, m)
        if sm is None or tm is None:
            continue
        wt = tm @ w.weight.t() + w.bias
        out[f"mse_{m}"] = beta * F.mse_loss(sm, wt)
        sim = F.normalize(sm, dim=1) @ F.normalize(wt, dim=1).t() / tau
        nce.append(F.cross_entropy(sim, torch.arange(B)))
    if gamma is not None and nce:
        out["infonce"] = gamma * sum(nce) / len(nce)
    return out


def _check(loss, s, t, want) -> None:
    with torch.no_grad():
        got = loss(s, t, _labels(), torch.arange(B))
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=k)
    torch.testing.assert_close(sum(got.values()), sum(want.values()), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- the formulas
def test_group_vanilla_is_its_formula_with_the_group_defaults():
    loss = _loss("group_vanilla")
    assert (loss.cfg.alpha, loss.cfg.temperature, loss.cfg.beta) == (1.0, 2.0, 100.0)
    s, t = _out(S_DIM, 0), _out(T_DIM, 1)
    _check(loss, s, t, _expected(loss, s, t, _labels(), 1.0, 2.0, 100.0))


def test_group_vanilla_with_set_numbers():
    loss = _loss("group_vanilla", alpha=1.5, temperature=3.0, beta=7.0)
    s, t = _out(S_DIM, 2), _out(T_DIM, 3)
    _check(loss, s, t, _expected(loss, s, t, _labels(), 1.5, 3.0, 7.0))


def test_group_combined_is_its_formula_with_the_group_defaults():
    loss = _loss("group_combined")
    assert (loss.cfg.alpha, loss.cfg.temperature, loss.cfg.beta) == (1.0, 4.0, 100.0)
    assert (loss.params.gamma, loss.params.infonce_temperature) == (10.0, 0.1)
    s, t = _out(S_DIM, 4), _out(T_DIM, 5)
    _check(loss, s, t, _expected(loss, s, t, _labels(), 1.0, 4.0, 100.0, gamma=10.0))


def test_group_combined_with_set_params():
    loss = _loss("group_combined", alpha=0.5, params={"gamma": 2.0, "infonce_temperature": 0.5})
    s, t = _out(S_DIM, 6), _out(T_DIM, 7)
    _check(loss, s, t, _expected(loss, s, t, _labels(), 0.5, 4.0, 100.0, gamma=2.0, tau=0.5))


@pytest.mark.parametrize("name", ["group_vanilla", "group_combined"])
def test_a_missing_modality_contributes_no_term(name):
    loss = _loss(name)
    gamma = 10.0 if name == "group_combined" else None
    s, t = _out(S_DIM, 8, text=False), _out(T_DIM, 9)
    want = _expected(loss, s, t, _labels(), 1.0, loss.cfg.temperature, 100.0, gamma)
    assert "mse_text" not in want
    _check(loss, s, t, want)
    s, t = _out(S_DIM, 8, text=False), _out(T_DIM, 9, image=False)  # nothing on both sides
    assert set(_expected(loss, s, t, _labels(), 1.0, 2.0, 100.0, gamma)) == {"ce", "kd"}
    _check(loss, s, t, _expected(loss, s, t, _labels(), 1.0, loss.cfg.temperature, 100.0, gamma))


# --------------------------------------------------------------------------- alpha conventions
@pytest.mark.parametrize("name", ["group_vanilla", "group_combined"])
def test_alpha_above_one_is_accepted_by_the_additive_losses(name):
    assert _loss(name, alpha=1.5).cfg.alpha == 1.5
    cfg = load_experiment("default", [f"loss.name={name}", "loss.alpha=1.5"])
    assert cfg.loss.alpha == 1.5
    with pytest.raises(ConfigError, match=r"^loss\.alpha: expected a value >= 0 .*got -0\.5$"):
        _loss(name, alpha=-0.5)


@pytest.mark.parametrize("name", ["vanilla", "combined", "crd", "rkd", "mmd"])
def test_alpha_above_one_is_refused_by_the_convex_losses(name):
    with pytest.raises(ConfigError) as built:
        _loss(name, alpha=1.5)
    msg = str(built.value)
    assert "\n" not in msg and msg.startswith("loss.alpha: expected a value in [0, 1]") and "1.5" in msg
    with pytest.raises(ConfigError) as loaded:
        load_experiment("default", [f"loss.name={name}", "loss.alpha=1.5"])
    msg = str(loaded.value)
    assert "\n" not in msg
    assert msg.startswith("override 'loss.alpha=1.5': loss.alpha: expected a value in [0, 1]")


# --------------------------------------------------------------------------- defaults and hashes
def test_the_group_defaults_apply_when_the_experiment_sets_none(tmp_path):
    exp = tmp_path / "g.yaml"
    exp.write_text("name: g\ndataset: synthetic-wound\nloss: {name: group_combined}\n")
    loss = load_experiment(exp).loss
    assert (loss.alpha, loss.temperature, loss.beta) == (1.0, 4.0, 100.0)
    # the default experiment sets alpha and temperature for vanilla; null gives them back
    cfg = load_experiment("default", ["loss.name=group_vanilla", "loss.alpha=null", "loss.temperature=null"])
    assert (cfg.loss.alpha, cfg.loss.temperature, cfg.loss.beta) == (1.0, 2.0, 100.0)
    explicit = load_experiment("default", ["loss.name=group_vanilla", "loss.alpha=1", "loss.temperature=2"])
    assert config_hash(explicit) == config_hash(cfg)  # the same loss, the same hash


def test_unset_keys_hash_as_the_schemas_old_defaults():
    base = load_experiment("default")
    hashed = to_dict(base, for_hash=True)["loss"]
    assert (hashed["alpha"], hashed["temperature"], hashed["beta"]) == (0.7, 4.0, 1.0)
    assert "train_params" not in hashed
    assert config_hash(load_experiment("default", ["loss.beta=1.0"])) == config_hash(base)
    assert config_hash(load_experiment("default", ["loss.train_params=null"])) == config_hash(base)
    assert config_hash(load_experiment("default", ["loss.train_params=true"])) != config_hash(base)
    assert "loss.train_params" not in flatten(base)  # no new MLflow param for existing runs
    assert flatten(load_experiment("default", ["loss.train_params=false"]))["loss.train_params"] is False


# --------------------------------------------------------------------------- fixed W
def _in_optimiser(loss) -> tuple[bool, bool]:
    """(W in the optimiser's params, W requires grad)."""
    params, opt = optimizer(nn.Linear(2, 2), loss, TrainConfig())
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert ids == {id(p) for p in params}
    w = [loss.w_image.weight, loss.w_image.bias, loss.w_text.weight, loss.w_text.bias]
    inside = {id(p) in ids for p in w}
    grads = {p.requires_grad for p in w}
    assert len(inside) == len(grads) == 1
    return inside.pop(), grads.pop()


@pytest.mark.parametrize("name", ["group_vanilla", "group_combined"])
def test_w_is_fixed_by_default_and_trained_when_asked(name):
    fixed = _loss(name)
    assert not any(p.requires_grad for p in fixed.parameters())
    assert _in_optimiser(fixed) == (False, False)
    trained = _loss(name, train_params=True)
    assert _in_optimiser(trained) == (True, True)
    s = _out(S_DIM, 0)
    s.image.requires_grad_(True)
    sum(trained(s, _out(T_DIM, 1), _labels(), torch.arange(B)).values()).backward()
    assert trained.w_image.weight.grad is not None and trained.w_image.weight.grad.abs().sum() > 0
    assert s.image.grad is not None  # the student trains in both cases


def test_train_params_false_freezes_a_trainable_loss():
    loss = _loss("combined", train_params=False)
    params, _ = optimizer(nn.Linear(2, 2), loss, TrainConfig())
    assert not any(p.requires_grad for p in loss.parameters())
    assert {id(p) for p in loss.parameters()}.isdisjoint(id(p) for p in params)
    assert list(_loss("combined").trained_parameters())  # trained by default, as before


# --------------------------------------------------------------------------- term names, formula
def test_a_term_name_used_twice_fails_when_the_loss_is_built():
    class Clashing(GroupVanillaKD):
        def term_list(self):
            return [*super().term_list(), TermSpec(term="align", name="kd", params={"feature": "fused"})]

    with pytest.raises(ValueError, match=r"^loss group_vanilla: two terms named 'kd' \(give one a `name`\)$"):
        Clashing(parse(LossConfig, {"name": "group_vanilla"}), _ctx())


def test_formula_text():
    assert _loss("group_vanilla").formula() == (
        "L = 1*CE + 1*T^2*KL(T=2) + 100*[MSE(s_img, W_img t_img) + MSE(s_txt, W_txt t_txt)] (W fixed)"
    )
    assert _loss("group_combined", alpha=1.5, train_params=True).formula() == (
        "L = 1*CE + 1.5*T^2*KL(T=4) + 100*[MSE(s_img, W_img t_img) + MSE(s_txt, W_txt t_txt)]"
        " + 10*mean_m InfoNCE(s_m, W_m t_m; tau=0.1) (W trained)"
    )
    assert _loss("vanilla", alpha=0.7).formula() == "L = 0.3*CE + 0.7*T^2*KL(T=4)"
    assert _loss("none").formula() == "L = 1*CE"
    assert (
        _loss("combined", train_params=False)
        .formula()
        .endswith(" + 1*[0.5*(1 - cos(P_img s_img, t_img)) + 0.5*(1 - cos(P_txt s_txt, t_txt))] (P fixed)")
    )
    for name in LOSSES.names():
        if "multiclass" in LOSSES.get(name).kinds:
            assert _loss(name).formula().startswith("L = "), name


@pytest.mark.slow
def test_a_student_run_records_its_formula_as_a_tag(synth_wound, tmp_path, monkeypatch):
    """End to end, tracked: the tag, and a teacher trained beside a loss with params of its own."""
    from mlflow.tracking import MlflowClient

    from pipeline.training.run import run_experiment
    from support import sqlite_store, tiny_overrides

    uri = sqlite_store(tmp_path / "mlruns" / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    extra = ["loss.name=group_combined", "loss.alpha=null", "loss.params.gamma=2", "tracking.log_models=none"]
    cfg = load_experiment("default", [*tiny_overrides(synth_wound, epochs=1), *extra])
    done = run_experiment(cfg, say=lambda s: None)
    student = MlflowClient(uri).get_run(done.student_run_id)
    assert student.data.tags["loss.formula"] == (
        "L = 1*CE + 1*T^2*KL(T=4) + 100*[MSE(s_img, W_img t_img) + MSE(s_txt, W_txt t_txt)]"
        " + 2*mean_m InfoNCE(s_m, W_m t_m; tau=0.1) (W fixed)"
    )
    assert "loss.train_params" not in student.data.params
