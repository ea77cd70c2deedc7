"""What tells runs apart in the MLflow UI (issue 28): run names that start with what their study
varies, params that hold only the sections a run's data format and models read, and the
registered model's account of its choice. Fast: the repository's own studies are planned
(configs composed and validated), nothing is trained."""

from __future__ import annotations

import pytest

from pipeline.config.identity import teacher_hash
from pipeline.config.loader import flatten, load_experiment
from pipeline.config.names import point_part, sweep_name, trial_name
from pipeline.config.params import run_params
from pipeline.config.phases import Phase
from pipeline.config.study import load_study, plan_trials
from pipeline.sweeps.batch import Row, names
from pipeline.sweeps.summary import lead

WOUND = ["dataset=synthetic-wound"]


def _names(study: str, extra: list[str]) -> list[dict[str, str]]:
    trials, _ = plan_trials(load_study(study)[0], extra)
    return [names(t) | {"hash": teacher_hash(t.cfg)} for t in trials]


def test_a_loss_study_names_its_runs_by_loss_and_seed():
    got = _names("loss", WOUND)
    assert [n["name"] for n in got] == [
        f"{x}-s0" for x in ("none", "vanilla", "combined", "crd", "rkd", "mmd")
    ]
    # one teacher for the whole study: the study varies nothing of it
    assert {n["teacher_name"] for n in got} == {f"teacher-s0-{got[0]['hash'][:6]}"}
    assert sweep_name("loss", "synthetic-wound") == "loss-synthetic-wound"


def test_a_fusion_point_reads_fusion_layers_heads_and_seed():
    point = {
        "teacher.fusion.name,student.fusion.name": "film",
        "teacher.fusion.layers,student.fusion.layers": 2,
        "teacher.fusion.heads,student.fusion.heads": 4,
    }
    assert trial_name(point, 1) == "film-l2-h4-s1"
    got = _names("fusion", WOUND)
    assert len({n["name"] for n in got}) == len(got) == 32  # every run of the study told apart
    # the fusion keys are the teacher's too: each teacher is named by its point and its hash
    assert all(n["teacher_name"].startswith("teacher-" + n["name"] + "-") for n in got)
    assert len({n["teacher_name"] for n in got}) == len({n["hash"] for n in got})


def test_phased_runs_keep_their_experiment_id_first_then_point_seed_and_fold():
    xlite = [n["name"] for n in _names("xlite", [])]
    assert xlite[:3] == [
        "BASELINE_001-efficientnet_b0-s0",
        "BASELINE_002-mobilenetv3_small_100-s0",
        "KD_001-efficientnet_b0-T4-a0.7-s0",
    ]
    mil = _names("mil", [])
    assert [n["name"] for n in mil[:2]] == ["CE_WRS_001-s0-fold0", "CE_WRS_001-s0-fold1"]
    assert mil[-1]["name"] == "KD_001-s0-fold4"
    # a fold's teacher is its own (trained on that fold's train split): the name says which
    assert mil[0]["teacher_name"] == f"teacher-s0-fold0-{mil[0]['hash'][:6]}"


def test_values_that_would_not_say_what_they_are_carry_their_key():
    assert point_part("student.vision.attention", "mhsa") == "attention=mhsa"
    assert point_part("student.vision.pretrained", True) == "pretrained=true"
    assert point_part("train.lr", 0.000123456) == "lr0.0001235"
    assert point_part("student.text", {"name": "nreimers/MiniLM-L6-H384-uncased"}) == "MiniLM-L6-H384-uncased"


def test_a_wound_run_logs_no_bag_mil_or_volume_params():
    cfg = load_experiment("default", WOUND)
    assert cfg.dataset.format == "csv"
    params = run_params(cfg)
    assert not [k for k in params if k.startswith("dataset.bags.")]
    assert not [k for k in params if k.startswith(("student.mil.", "student.volume.", "loss.ldam."))]
    assert "dataset.table.files" in params and "student.fusion.layers" in params  # what applies stays
    # what the reports read stays (reports/groups.py, csvs.py, studies/)
    for key in (
        "seed",
        "dataset.tasks.type",
        "loss.temperature",
        "loss.alpha",
        "train.lr",
        "student.vision.name",
    ):
        assert key in params, key
    assert set(params) < set(flatten(cfg))  # only left out, nothing renamed


def test_mil_and_3d_runs_log_their_own_sections_and_not_the_others():
    mil = run_params(load_experiment("mil"))
    assert "dataset.bags.modalities" in mil and "student.mil.name" in mil  # the MIL report reads it
    assert not [k for k in mil if k.startswith(("dataset.table.", "student.text.", "student.volume."))]
    three_d = run_params(load_experiment("resnet3d"))
    assert "student.volume.depth" in three_d
    assert not [k for k in three_d if k.startswith(("student.vision.", "student.fusion.", "student.mil."))]


def _row(label: str, dev: float, seed: int, point: str) -> Row:
    return Row(
        f"{label} seed={seed}", "FINISHED", dev=dev, run_id=f"r{label}{seed}", seed=seed, defining=[point]
    )


@pytest.mark.parametrize(
    ("devs_a", "devs_b", "says"),
    [
        ([0.80], [0.70], "one seed: cannot tell noise from effect (a single dev difference is not evidence)"),
        (
            [0.80, 0.81, 0.82],
            [0.70, 0.71, 0.72],
            "paired over 3 seed/fold runs, 95 % interval [+0.1000, +0.1000]: beyond noise",
        ),
        ([0.80, 0.60, 0.90], [0.70, 0.75, 0.72], "paired over 3 seed/fold runs, 95 % interval"),
    ],
)
def test_the_lead_over_the_runner_up_is_judged_on_paired_seeds(devs_a, devs_b, says):
    rows = [_row("loss.name=vanilla", d, s, "loss.name=vanilla") for s, d in enumerate(devs_a)]
    rows += [_row("loss.name=none", d, s, "loss.name=none") for s, d in enumerate(devs_b)]
    best = max(rows[: len(devs_a)], key=lambda r: r.dev)
    text = lead(rows, (Phase(name=""),), best, "dev/avg_f1", "max")
    gap = sum(devs_a) / len(devs_a) - sum(devs_b) / len(devs_b)
    assert f"runner-up `loss.name=none`, lead {gap:+.4f}" in text and says in text, text
    if len(devs_a) == 3 and "beyond" not in says:
        assert text.endswith("within noise.")  # a mean lead whose seeds disagree is no evidence
