"""pipeline.config.loader: YAML + profile + dataset + overrides -> frozen typed config; one-line errors."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from core.schema import DatasetConfig, ExperimentConfig
from pipeline.config.loader import (
    config_hash,
    dump_yaml,
    flatten,
    load_dataset_config,
    load_experiment,
    parse,
)

REPO = Path(__file__).resolve().parents[1]
SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
DATASETS = ", ".join(sorted(p.stem for p in (SWEEPS / "datasets").glob("*.yaml")))
PROFILES = ", ".join(sorted(p.stem for p in (SWEEPS / "profiles").glob("*.yaml")))


def config_error(*args, loader=load_experiment) -> str:
    with pytest.raises(ConfigError) as info:
        loader(*args)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- loading
def test_default_experiment_is_typed_and_frozen():
    cfg = load_experiment("default")
    assert isinstance(cfg, ExperimentConfig) and isinstance(cfg.dataset, DatasetConfig)
    assert cfg.dataset.name == "synthetic-wound" and cfg.tasks == ("type", "severity")
    assert cfg.loss.alpha == 0.7 and isinstance(cfg.loss.temperature, float)
    assert cfg.teacher.fusion.dim == 96 and cfg.student.text.tokenizer.vocab_size == 1000  # profile tiny
    assert cfg.loss.beta == 1.0  # schema default, set nowhere in the files
    assert cfg.dataset.format == "csv" and cfg.dataset.text.fields == ("description",)  # the group's layout
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.loss.alpha = 0.1
    with pytest.raises(TypeError):
        cfg.dataset.tasks["extra"] = "Field"
    assert load_experiment(REPO / "sweeps" / "experiments" / "default.yaml") == cfg


def test_overrides_are_parsed_and_win(tmp_path):
    exp = write(tmp_path / "e.yaml", "dataset: synthetic-wound\ntrain:\n  batch_size: 8\n")
    cfg = load_experiment(
        exp,
        [
            "loss.alpha=0.25",
            "train.lr=1e-3",
            "dataset=synthetic-medpix",
            f"dataset.root={tmp_path}",
            "teacher.fusion.heads=8",
            "dataset.tasks={modality: Type}",
        ],
    )
    assert cfg.train.batch_size == 8  # experiment file over profile (tiny says 32)
    assert cfg.train.lr == 0.001 and isinstance(cfg.train.lr, float)
    assert cfg.loss.alpha == 0.25 and cfg.teacher.fusion.heads == 8
    assert cfg.dataset.name == "synthetic-medpix" and cfg.dataset.channels == 1
    assert cfg.dataset.root == str(tmp_path) and dict(cfg.dataset.tasks) == {"modality": "Type"}


def test_dataset_root_from_environment_resolved_where_the_command_runs(monkeypatch, tmp_path):
    """Relative roots are made absolute once, against the working directory: trials in another
    directory (a Ray job's working_dir, another node) then read the same folder."""
    monkeypatch.delenv("SYNTHETIC_WOUND_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_experiment("default").dataset.root == str(tmp_path / "data" / "synthetic-wound")
    monkeypatch.setenv("SYNTHETIC_WOUND_ROOT", "/somewhere/wound")
    assert load_experiment("default").dataset.root == "/somewhere/wound"
    monkeypatch.setenv("SYNTHETIC_WOUND_ROOT", "rel/wound")
    assert load_experiment("default").dataset.root == str(tmp_path / "rel" / "wound")
    assert load_dataset_config("synthetic-wound").root == str(tmp_path / "rel" / "wound")


def test_alpha_and_temperature_boundaries_are_accepted():
    assert load_experiment("default", ["loss.alpha=0"]).loss.alpha == 0.0
    assert load_experiment("default", ["loss.alpha=1"]).loss.alpha == 1.0
    assert load_experiment("default", ["loss.temperature=0.01"]).loss.temperature == 0.01


# --------------------------------------------------------------------------- errors from overrides
@pytest.mark.parametrize(
    "override, expected",
    [
        ("loss.alpah=0.3", ["loss.alpah", "unknown key", "closest: alpha"]),
        ("lose.alpha=0.3", ["lose", "unknown key", "loss"]),
        ("train.batch_size=2.5", ["train.batch_size", "expected an integer", "float 2.5"]),
        ("train.batch_size=true", ["train.batch_size", "expected an integer", "bool True"]),
        ("loss.alpha=abc", ["loss.alpha", "expected a number", "str 'abc'"]),
        ("dataset.channels=true", ["dataset.channels", "expected one of 1, 3", "True"]),
        ("dataset.text.fields=Caption", ["dataset.text.fields", "expected a list"]),
        ("loss.label_loss=hinge", ["loss.label_loss", "expected one of ce, focal, weighted_ce"]),
        ("loss.alpha=1.5", ["loss.alpha", "[0, 1]", "1.5"]),
        ("loss.alpha=-0.1", ["loss.alpha", "[0, 1]", "-0.1"]),
        ("loss.temperature=0", ["loss.temperature", "> 0", "0.0"]),
        ("loss.temperature=-2", ["loss.temperature", "> 0", "-2.0"]),
        ("train.batch_size=0", ["train.batch_size", "> 0"]),
        ("student.vision.image_size=-1", ["student.vision.image_size", "> 0"]),
        ("teacher.fusion.dim=98", ["teacher.fusion.dim", "divisible by heads", "dim=98, heads=4"]),
        ("dataset=nope", ["dataset", "unknown dataset 'nope'", f"valid: {DATASETS}"]),
        (
            "profile=nope",
            ["profile", "unknown profile 'nope'", f"valid: {PROFILES}"],
        ),
        ("dataset.tasks={}", ["dataset.tasks", "at least one task"]),
        ("loss.alpha.x=1", ["loss.alpha", "not a section"]),
        # a task name the dataset does not define (tasks of synthetic-wound: type, severity)
        ("train.monitor=color/f1", ["train.monitor", "type, severity", "'color/f1'"]),
    ],
)
def test_override_errors_are_one_line(override, expected):
    msg = config_error("default", [override])
    assert msg.startswith(f"override {override!r}: "), msg
    for part in expected:
        assert part in msg, (part, msg)


def test_override_without_equals_sign():
    assert "expected key.sub=value" in config_error("default", ["loss.alpha"])


def test_unknown_experiment_lists_valid_ones():
    msg = config_error("no-such-experiment")
    assert "unknown experiment 'no-such-experiment'" in msg and "valid: default" in msg


# --------------------------------------------------------------------------- errors from files
@pytest.mark.parametrize(
    "body, line, expected",
    [
        ("loss:\n  alpha: 0.5\n  temprature: 2.0\n", 4, ["loss.temprature", "unknown key", "temperature"]),
        ("trian:\n  lr: 0.1\n", 2, ["trian", "unknown key", "train"]),
        ("train:\n  batch_size: big\n", 3, ["train.batch_size", "expected an integer", "str 'big'"]),
        ("loss: {alpha: 2}\n", 2, ["loss.alpha", "[0, 1]", "2.0"]),
        ("loss:\n  temperature: 0\n", 3, ["loss.temperature", "> 0"]),
        ("teacher:\n  fusion:\n    dim: 10\n", 4, ["teacher.fusion.dim", "divisible by heads"]),
        (
            "profile: huge\n",
            2,
            ["profile", "unknown profile 'huge'", f"valid: {PROFILES}"],
        ),
        ("loss: [1, 2\n", 3, ["invalid YAML"]),
    ],
)
def test_file_errors_name_file_line_key(tmp_path, body, line, expected):
    exp = write(tmp_path / "exp.yaml", "dataset: synthetic-wound\n" + body)
    msg = config_error(exp)
    assert msg.startswith(f"{exp}:{line}: "), msg
    for part in expected:
        assert part in msg, (part, msg)


def test_unknown_dataset_in_file(tmp_path):
    exp = write(tmp_path / "exp.yaml", "name: x\ndataset: mnist\n")
    assert config_error(exp) == f"{exp}:2: dataset: unknown dataset 'mnist' (valid: {DATASETS})"


def test_error_inside_dataset_and_profile_files_names_them(tmp_path, monkeypatch):
    sweeps = tmp_path / "sweeps"
    shutil.copytree(REPO / "sweeps", sweeps)
    monkeypatch.setenv("KDSWEEP_SWEEPS_DIR", str(sweeps))
    dataset = sweeps / "datasets" / "synthetic-wound.yaml"
    lines = dataset.read_text().splitlines()
    n = next(i for i, t in enumerate(lines, 1) if t.startswith("channels:"))
    lines[n - 1] = "chanels: 3"
    write(dataset, "\n".join(lines) + "\n")
    msg = config_error("default", [])
    assert msg.startswith(f"{dataset}:{n}: dataset.chanels: unknown key"), msg
    assert "closest: channels" in msg

    shutil.copy(REPO / "sweeps" / "datasets" / "synthetic-wound.yaml", dataset)
    profile = sweeps / "profiles" / "tiny.yaml"
    write(profile, profile.read_text().replace("heads: 4}", "heads: 5}", 1))
    msg = config_error("default", [])
    assert msg.startswith(f"{profile}:") and "teacher.fusion.dim" in msg and "heads=5" in msg, msg


def test_task_label_field_must_be_a_string():
    # dataset.tasks maps task names to label fields; a value that is not a string is rejected.
    msg = config_error("default", ["dataset.tasks={type: [Type]}"])
    assert "dataset.tasks.type" in msg and "expected a string" in msg


# --------------------------------------------------------------------------- dataset configs
def test_load_dataset_config(tmp_path):
    cfg = load_dataset_config("medpix", [f"root={tmp_path}", "unseen_labels=drop"])
    assert cfg.name == "medpix" and cfg.root == str(tmp_path) and cfg.unseen_labels == "drop"
    assert dict(cfg.tasks) == {"modality": "Type", "location": "Location Category"}
    msg = config_error("mnist", loader=load_dataset_config)
    assert "unknown dataset 'mnist'" in msg and DATASETS in msg
    msg = config_error("medpix", ["chanels=3"], loader=load_dataset_config)
    assert msg.startswith("override 'chanels=3': chanels: unknown key") and "channels" in msg
    msg = config_error("medpix", ["channels=rgb"], loader=load_dataset_config)
    assert "channels" in msg and "expected one of 1, 3" in msg and "'rgb'" in msg


# --------------------------------------------------------------------------- outputs
def test_flatten_gives_dotted_scalars():
    flat = flatten(load_experiment("default"))
    assert all(isinstance(v, str | int | float | bool | type(None)) for v in flat.values()), flat
    assert flat["loss.alpha"] == 0.7 and flat["dataset.tasks.type"] == "type"
    assert flat["teacher.vision.kwargs.embed_dim"] == 96
    assert flat["dataset.text.fields"] == '["description"]' and flat["loss.params"] == "{}"
    assert flat["teacher.vision.checkpoint"] is None and "output_dir" in flat


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["profile=paper", "name='007'", "train.lr=2e-5", "train.monitor=severity/f1"],
        ["teacher.vision.kwargs={a: [1, 2], b: {c: x}}", "dataset.text.case_fields=[]"],
    ],
)
def test_dump_yaml_round_trips(overrides):
    cfg = load_experiment("default", overrides)
    text = dump_yaml(cfg)
    back = parse(ExperimentConfig, yaml.safe_load(text))
    assert back == cfg
    assert dump_yaml(back) == text and config_hash(back) == config_hash(cfg)


def test_config_hash_ignores_key_order_and_unhashed_fields(tmp_path):
    a = write(tmp_path / "a.yaml", "dataset: synthetic-wound\nseed: 1\nloss: {alpha: 0.3, temperature: 2}\n")
    b = write(
        tmp_path / "b.yaml", "loss:\n  temperature: 2\n  alpha: 0.3\nseed: 1\ndataset: synthetic-wound\n"
    )
    base = config_hash(load_experiment(a))
    assert len(base) == 16 and int(base, 16) >= 0
    assert config_hash(load_experiment(b)) == base
    same = ["name=other", "output_dir=/elsewhere", "train.num_workers=4", "train.eval_batch_size=7"]
    assert config_hash(load_experiment(a, same + ["train.latency_runs=3"])) == base
    for changed in ["loss.alpha=0.31", "seed=2", "train.batch_size=16", "dataset.tasks={type: Type}"]:
        assert config_hash(load_experiment(a, [changed])) != base, changed


def test_config_hash_is_stable_across_processes():
    cfg = load_experiment("default", ["loss.alpha=0.2"])
    code = (
        "import sys, yaml; from pipeline.config.loader import *; from core.schema import ExperimentConfig; "
    )
    code += "print(config_hash(parse(ExperimentConfig, yaml.safe_load(sys.stdin.read()))))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], input=dump_yaml(cfg), cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == config_hash(cfg)


def test_task_kind_and_its_label_losses_are_checked_before_any_work():
    with pytest.raises(
        ConfigError, match=r"dataset.kind: unknown task kind 'regression' \(valid: multiclass, multilabel\)"
    ):
        load_experiment("default", ["dataset.kind=regression"])
    with pytest.raises(
        ConfigError,
        match=r"loss.label_loss: 'ce' is not a label loss of multilabel tasks .*valid: bce, weighted_bce, focal",
    ):
        load_experiment("default", ["dataset.kind=multilabel"])
    assert (
        load_experiment("default", ["dataset.kind=multilabel", "loss.label_loss=weighted_bce"]).dataset.kind
        == "multilabel"
    )
