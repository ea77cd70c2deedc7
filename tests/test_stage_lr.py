"""Per-stage learning rates: `train.teacher_lr` and `train.student_lr` (None: `train.lr`), and the
rate over a stage's steps (`train.schedule`: constant or cosine)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

import pipeline.training.train as train_mod
from core.errors import ConfigError
from pipeline.config.identity import teacher_hash
from pipeline.config.loader import config_hash, load_experiment, to_dict
from pipeline.training.run import run_experiment
from support import sqlite_store, tiny_overrides


def test_unset_rates_fall_back_to_lr_and_stay_out_of_the_hash():
    cfg = load_experiment("default", ["train.lr=0.002"])
    assert (cfg.train.teacher_lr, cfg.train.student_lr) == (None, None)
    assert (cfg.train.lr_for("teacher"), cfg.train.lr_for("student")) == (0.002, 0.002)
    hashed = to_dict(cfg, for_hash=True)["train"]
    assert "teacher_lr" not in hashed and "student_lr" not in hashed
    explicit_null = load_experiment("default", ["train.lr=0.002", "train.teacher_lr=null"])
    assert config_hash(explicit_null) == config_hash(cfg)
    assert teacher_hash(explicit_null) == teacher_hash(cfg)


def test_set_rates_are_parsed_and_hashed():
    base = load_experiment("default", [])
    cfg = load_experiment("default", ["train.teacher_lr=1e-5", "train.student_lr=3e-4"])
    assert (cfg.train.lr_for("teacher"), cfg.train.lr_for("student")) == (1e-5, 3e-4)
    assert config_hash(cfg) != config_hash(base)


def test_teacher_hash_depends_on_the_teacher_rate_only():
    base = load_experiment("default", ["train.lr=0.001"])
    student_only = load_experiment("default", ["train.lr=0.001", "train.student_lr=0.0003"])
    same_rate = load_experiment("default", ["train.lr=0.001", "train.teacher_lr=0.001"])
    other_rate = load_experiment("default", ["train.lr=0.001", "train.teacher_lr=0.00001"])
    # a student rate never retrains the teacher; a teacher rate equal to lr is the same teacher
    assert teacher_hash(student_only) == teacher_hash(base) == teacher_hash(same_rate)
    assert teacher_hash(other_rate) != teacher_hash(base)


@pytest.mark.parametrize("key", ["teacher_lr", "student_lr"])
@pytest.mark.parametrize("value", ["0", "-1e-4"])
def test_non_positive_rate_is_a_one_line_error_naming_the_key(key, value):
    with pytest.raises(ConfigError) as info:
        load_experiment("default", [f"train.{key}={value}"])
    msg = str(info.value)
    assert "\n" not in msg and f"train.{key}" in msg and "expected a value > 0" in msg, msg


def test_each_stage_optimiser_gets_its_rate():
    cfg = dataclasses.replace(load_experiment("default", []).train, teacher_lr=1e-5, student_lr=3e-4)
    model, loss = nn.Linear(3, 2), nn.Module()
    for role, rate in (("teacher", 1e-5), ("student", 3e-4)):
        _, opt = train_mod.optimizer(model, loss, cfg, cfg.lr_for(role))
        assert [g["lr"] for g in opt.param_groups] == [rate]
    _, opt = train_mod.optimizer(model, loss, cfg)  # no stage rate: train.lr
    assert opt.param_groups[0]["lr"] == cfg.lr


@pytest.mark.slow
def test_tiny_run_trains_and_logs_each_stage_at_its_rate(synth_wound, tmp_path, monkeypatch):
    uri = sqlite_store(tmp_path / "mlruns" / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    seen: list[float] = []
    real = train_mod.optimizer

    def recording(*args, **kw):
        params, opt = real(*args, **kw)
        seen.append(opt.param_groups[0]["lr"])
        return params, opt

    monkeypatch.setattr(train_mod, "optimizer", recording)
    overrides = [*tiny_overrides(synth_wound, epochs=1), "train.teacher_lr=0.002", "train.student_lr=0.0005"]
    result = run_experiment(load_experiment("default", overrides), say=lambda s: None)
    assert seen == [0.002, 0.0005]  # the teacher trains first, then the student
    client = MlflowClient(uri)
    for run_id in (result.teacher_run_id, result.student_run_id):
        params = client.get_run(run_id).data.params
        assert (params["train.teacher_lr"], params["train.student_lr"]) == ("0.002", "0.0005")
        assert params["train.lr"] == "0.001"


def test_schedule_is_out_of_the_hash_and_params_until_set():
    base = load_experiment("default", [])
    constant = load_experiment("default", ["train.schedule=constant"])
    cosine = load_experiment("default", ["train.schedule=cosine"])
    assert base.train.schedule == "constant"
    assert config_hash(constant) == config_hash(base) and teacher_hash(constant) == teacher_hash(base)
    assert "schedule" not in to_dict(base, for_params=True)["train"]
    assert to_dict(cosine, for_params=True)["train"]["schedule"] == "cosine"
    assert config_hash(cosine) != config_hash(base) and teacher_hash(cosine) != teacher_hash(base)


def test_unknown_schedule_is_a_one_line_error_naming_the_key():
    with pytest.raises(ConfigError) as info:
        load_experiment("default", ["train.schedule=linear"])
    msg = str(info.value)
    assert "\n" not in msg and "train.schedule" in msg and "cosine" in msg, msg


def test_cosine_rate_follows_its_formula_step_by_step():
    """lr_k = lr * (1 + cos(pi k / K)) / 2 for the update of step k (SGDR without restarts)."""
    lr, steps = 0.01, 7
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([w], lr=lr)
    sched = train_mod.schedule(opt, "cosine", steps)
    used = []
    for _ in range(steps):
        used.append(opt.param_groups[0]["lr"])
        w.sum().backward()
        opt.step()
        sched.step()
    expected = [lr * (1 + math.cos(math.pi * k / steps)) / 2 for k in range(steps)]
    assert used == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert used[0] == lr and opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)
    assert train_mod.schedule(opt, "constant", steps) is None


def test_fit_steps_the_cosine_schedule_over_every_batch_of_every_epoch(synth_wound, monkeypatch):
    """The schedule's horizon is epochs x batches (the last partial batch counted): after a
    whole stage the rate has reached 0."""
    from losses import LOSSES
    from pipeline.training.run import build_model, loss_context, prepare, teacher_loss

    cfg = load_experiment("default", [*tiny_overrides(synth_wound, epochs=2), "train.schedule=cosine"])
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, patience=5, batch_size=7))
    data, device = prepare(cfg, lambda s: None)
    model = build_model(cfg.teacher, data, "teacher", 0)
    loss = LOSSES.get("none")(teacher_loss(cfg.loss), loss_context(data, model, model))
    opts = []
    real = train_mod.optimizer

    def keep(*args, **kw):
        params, opt = real(*args, **kw)
        opts.append(opt)
        return params, opt

    monkeypatch.setattr(train_mod, "optimizer", keep)
    train_mod.fit(model, loss, data, cfg.train, 2, 0, device)
    (opt,) = opts
    assert opt.param_groups[0]["initial_lr"] == cfg.train.lr
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
