"""Every shipped study and experiment loads and validates (a new file is checked for free);
study-level errors are one line with the key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from pipeline.config.loader import load_experiment
from pipeline.config.study import expand, load_study, plan_trials

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"


@pytest.mark.parametrize("study", sorted(p.stem for p in SWEEPS.glob("*.yaml")))
def test_shipped_study_expands_to_valid_trials(study):
    cfg, text = load_study(study)
    trials, planned = plan_trials(cfg)
    assert trials and text and planned
    for phase in cfg.plan():  # no configuration twice within a phase
        of_phase = [t for t in trials if t.phase == phase.name]
        assert of_phase and len({t.config_hash for t in of_phase}) == len(of_phase)
    assert all(t.cfg.seed in cfg.seeds for t in trials)


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (SWEEPS / "experiments").glob("*.yaml")))
def test_shipped_experiment_loads(experiment):
    assert load_experiment(experiment).dataset.tasks


def test_seeds_repeat_every_configuration():
    cfg, _ = load_study("kd", seeds=3)
    trials = expand(cfg)
    assert len(trials) == 4 * 3 * 3 and {t.seed for t in trials} == {0, 1, 2}


def test_tied_keys_set_teacher_and_student():
    cfg, _ = load_study("fusion")
    t = expand(cfg)[-1]
    assert t.cfg.teacher.fusion.name == t.cfg.student.fusion.name == "energy_aware_adaptive"


def _write(tmp_path, **data) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"experiment": "default", **data}))
    return str(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"space": {"loss.alpha": {"low": 0.1, "high": 0.9}}},
            "space.loss.alpha: a range needs search.algorithm random or optuna",
        ),
        ({"metric": "test/avg_f1"}, "metric: expected a dev metric"),
        ({"space": {"loss.alpah": [0.5]}}, "s.yaml:3: loss.alpah: unknown key \\(closest: alpha\\)"),
        (
            {"space": {"loss.alpha": [0.5, 1.5]}},
            "s.yaml:3: loss.alpha: expected a value in \\[0, 1\\].*\\[loss.alpha=1.5\\]",
        ),
        ({"search": {"algorithm": "bayes"}}, "search.algorithm: expected one of grid, random, optuna"),
        ({"seeds": []}, "seeds: expected at least one seed"),
    ],
)
def test_bad_study_is_one_line_error(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message) as err:
        expand(load_study(_write(tmp_path, **data))[0])
    assert "\n" not in str(err.value)


def test_random_search_is_reproducible_and_checks_range_ends(tmp_path):
    space = {"loss.alpha": {"low": 0.1, "high": 0.9}, "loss.temperature": [2, 4]}
    path = _write(tmp_path, space=space, search={"algorithm": "random", "num_samples": 5, "seed": 3})
    a, b = expand(load_study(path)[0]), expand(load_study(path)[0])
    assert [t.config_hash for t in a] == [t.config_hash for t in b] and len(a) == 5
    assert all(0.1 <= t.cfg.loss.alpha <= 0.9 for t in a)
    bad = _write(tmp_path, space={"loss.alpha": {"low": 0.5, "high": 1.5}}, search={"algorithm": "random"})
    with pytest.raises(ConfigError, match="loss.alpha=1.5"):
        expand(load_study(bad)[0])


@pytest.mark.parametrize("profile", sorted(p.stem for p in (SWEEPS / "profiles").glob("*.yaml")))
def test_shipped_profile_composes_with_a_dataset_of_its_kind(profile):
    """Every profile validates, registry names and label loss included, with a dataset of the
    task kind it is made for (the X-Lite profiles are image-only and multilabel, the MIL ones
    read bags)."""
    dataset = {"xlite": "synthetic-chestxray", "mil": "synthetic-brats", "brats3d": "synthetic-brats"}.get(
        profile.split("-")[0], "synthetic-wound"
    )
    extra = ["loss.name=none"] if dataset == "synthetic-brats" else []
    cfg = load_experiment("default", [f"profile={profile}", f"dataset={dataset}", *extra])
    assert cfg.profile == profile and cfg.dataset.name == dataset


STUDY_WITH_LINES = """\
# a study with a mistake at a known line
experiment: default
overrides:
  - student.fusion.name=cross_attention
  - {fixed}
space:
  loss.name: [none, vanilla]
  {key}: [a, b]
"""


@pytest.mark.parametrize(
    ("fixed", "key", "line", "message"),
    [
        ("seed=1", "loss.nmae", 8, "loss.nmae: unknown key (closest: name)"),
        ("loss.alpah=0.3", "loss.name", 5, "loss.alpah: unknown key (closest: alpha)"),
        ("loss.alpha", "loss.name", 5, "expected key.sub=value, got 'loss.alpha'"),
        ("seed=1", "student.fusion.name", 8, "student.fusion.name: unknown fusion 'a'"),
    ],
)
def test_a_study_s_own_keys_are_named_by_file_and_line_not_as_overrides(tmp_path, fixed, key, line, message):
    path = tmp_path / "typo.yaml"
    path.write_text(STUDY_WITH_LINES.format(fixed=fixed, key=key))
    with pytest.raises(ConfigError) as err:
        expand(load_study(path)[0])
    text = str(err.value)
    assert text.startswith(f"{path}:{line}: {message}"), text
    assert "override" not in text and "study 'typo'" in text


def test_a_phase_s_keys_are_named_by_line_and_the_command_line_s_as_overrides(tmp_path):
    path = tmp_path / "phased.yaml"
    path.write_text(
        "experiment: default\n"
        "phases:\n"
        "  - name: base\n"
        "    overrides: [loss.name=none]\n"
        "    space:\n"
        "      loss.temprature: [2, 4]\n"
    )
    with pytest.raises(ConfigError) as err:
        plan_trials(load_study(path)[0])
    assert str(err.value).startswith(f"{path}:6: loss.temprature: unknown key (closest: temperature)")
    assert "override" not in str(err.value) and "phase 'base'" in str(err.value)
    path.write_text(path.read_text().replace("temprature", "temperature"))
    with pytest.raises(ConfigError) as err:  # a real command-line override is called one
        plan_trials(load_study(path)[0], ["loss.alpah=0.3"])
    assert str(err.value).startswith("override 'loss.alpah=0.3': loss.alpah: unknown key")
