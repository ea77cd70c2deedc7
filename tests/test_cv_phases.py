"""k-fold cross-validation (the experiment's `split` section) and phased studies, without Ray:
the folds the data stage builds, the hashes they change, the plan's ids, order and choices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from core.errors import ConfigError
from core.schema import SplitConfig
from pipeline.config.loader import config_hash, load_experiment
from pipeline.config.phases import choose
from pipeline.config.study import expand, expand_phase, load_study
from pipeline.data.chestxray import samples
from pipeline.data.medpix import read_dataset
from pipeline.data.splits import apply_split
from pipeline.training.run import teacher_hash


@pytest.fixture(scope="module")
def synth_xray(tmp_path_factory) -> Path:
    from pipeline.data.synth.chestxray import generate_chestxray

    out = tmp_path_factory.mktemp("cv-xray") / "chestxray"
    generate_chestxray(out, n_patients=60, image_size=16, seed=0)
    return out


def _wound(root: Path, *extra: str):
    return load_experiment("default", ["dataset=synthetic-wound", f"dataset.root={root}", *extra])


def _xray(root: Path, *extra: str):
    return load_experiment(
        "default", ["dataset=synthetic-chestxray", "profile=xlite-tiny", f"dataset.root={root}", *extra]
    )


def _rounds(cfg_of, read, k: int) -> list[dict]:
    return [apply_split(cfg_of(f).split, cfg_of(f).dataset, read(cfg_of(f)), seed=0) for f in range(k)]


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_folds_cover_train_dev_keep_patients_whole_and_leave_test_alone(kind, synth_wound, synth_xray):
    k = 3
    if kind == "multiclass":
        cfg_of = lambda f: _wound(synth_wound, f"split.folds={k}", f"split.fold={f}")  # noqa: E731
        read = lambda c: read_dataset(c.dataset)  # noqa: E731
    else:
        cfg_of = lambda f: _xray(synth_xray, f"split.folds={k}", f"split.fold={f}")  # noqa: E731
        read = lambda c: samples(c.dataset)[0]  # noqa: E731
    original = read(cfg_of(0))
    pool = {s.image_path for s in [*original["train"], *original["dev"]]}
    rounds = _rounds(cfg_of, read, k)
    devs = [{s.image_path for s in r["dev"]} for r in rounds]
    assert set().union(*devs) == pool and sum(map(len, devs)) == len(pool)  # each image in one dev fold
    for r in rounds:
        assert [s.image_path for s in r["test"]] == [s.image_path for s in original["test"]]
        train_pat, dev_pat = {s.case_id for s in r["train"]}, {s.case_id for s in r["dev"]}
        assert not train_pat & dev_pat  # a patient never on both sides of a round
        assert {s.image_path for s in r["train"]} == pool - {s.image_path for s in r["dev"]}
    again = _rounds(cfg_of, read, k)  # deterministic
    assert [[s.image_path for s in r["dev"]] for r in again] == [
        [s.image_path for s in r["dev"]] for r in rounds
    ]


def test_multilabel_folds_are_stratified(synth_xray):
    k = 3
    rounds = _rounds(
        lambda f: _xray(synth_xray, f"split.folds={k}", f"split.fold={f}"), lambda c: samples(c.dataset)[0], k
    )
    prev = np.array([np.mean([s.labels["findings"] for s in r["dev"]], axis=0) for r in rounds])
    common = prev[:, prev.mean(0) > 0.15]  # labels frequent enough to compare
    assert common.size and np.abs(common - common.mean(0)).max() < 0.12


def test_refit_trains_on_train_and_dev(synth_wound):
    cfg = _wound(synth_wound, "split.refit=true")
    base = read_dataset(cfg.dataset)
    out = apply_split(cfg.split, cfg.dataset, base, seed=0)
    assert len(out["train"]) == len(base["train"]) + len(base["dev"]) and out["test"] == base["test"]


def test_split_keys_are_checked_and_the_default_keeps_old_hashes(synth_wound):
    plain = _wound(synth_wound)
    explicit = _wound(synth_wound, "split.folds=0", "split.refit=false")
    assert plain.split == SplitConfig() and config_hash(plain) == config_hash(explicit)
    assert teacher_hash(plain) == teacher_hash(explicit)
    # each fold (and the refit) has its own teacher: it must never see that round's dev
    hashes = {teacher_hash(_wound(synth_wound, "split.folds=3", f"split.fold={f}")) for f in range(3)}
    hashes.add(teacher_hash(_wound(synth_wound, "split.refit=true")))
    assert len(hashes | {teacher_hash(plain)}) == 5
    for bad, msg in [
        (["split.folds=3", "split.fold=3"], r"split.fold: expected a fold in \[0, 3\)"),
        (["split.folds=1"], "split.folds: expected 0"),
        (["split.folds=3", "split.group=Patient ID"], r"split.group: expected patient .*'U_id'"),
        (["split.folds=3", "split.refit=true"], "split.refit"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            _wound(synth_wound, *bad)


def _study(tmp_path: Path, **data) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(
        yaml.safe_dump({"experiment": "default", "metric": "dev/avg_f1", **data}, sort_keys=False)
    )
    return path


PLAN = [
    {"name": "base", "id": "B", "overrides": ["loss.name=none"], "space": {"train.lr": [0.001, 0.002]}},
    {"name": "kd", "id": "KD", "overrides": ["loss.name=vanilla"], "space": {"loss.temperature": [2, 4]}},
    {"name": "tau", "best_of": ["kd"], "space": {"loss.temperature": [1, 8]}},
    {"name": "cv", "best_of": ["base", "kd"], "cv": {"folds": 3}},
    {"name": "final", "best_of": ["base", "kd"], "refit": True},
]


def test_phases_give_ids_in_grid_order_and_overrides_in_plan_order(tmp_path, synth_wound):
    study, _ = load_study(_study(tmp_path, phases=PLAN, seeds=[0, 1]))
    extra = ["dataset=synthetic-wound", f"dataset.root={synth_wound}"]
    kd = expand_phase(study, study.phases[1], extra)
    assert [(t.exp_id, t.seed) for t in kd] == [("KD_001", 0), ("KD_001", 1), ("KD_002", 0), ("KD_002", 1)]
    assert kd[2].cfg.loss.temperature == 4 and kd[2].cfg.loss.name == "vanilla"
    chosen = kd[2].defining
    tau = expand_phase(study, study.phases[2], extra, chosen)
    assert [t.exp_id for t in tau][::2] == ["TAU_001", "TAU_002"]
    assert [t.cfg.loss.temperature for t in tau][::2] == [1, 8]  # the phase's point beats the choice
    cv = expand_phase(study, study.phases[3], extra, chosen)
    assert [(t.seed, t.fold) for t in cv] == [(s, f) for s in (0, 1) for f in range(3)]
    assert {t.cfg.split.folds for t in cv} == {3} and cv[4].cfg.split.fold == 1
    final = expand_phase(study, study.phases[4], extra, chosen)
    assert [t.exp_id for t in final] == ["FINAL_001"] * 2 and final[0].cfg.split.refit
    assert final[0].cfg.loss.temperature == 4 and final[0].config_hash != kd[2].config_hash


def test_plan_errors_name_the_key(tmp_path):
    for data, msg in [
        ({"phases": [PLAN[2]]}, r"phases\[0\].best_of: expected earlier phases \(none\), got 'kd'"),
        ({"phases": [PLAN[0], PLAN[0]]}, r"phases\[1\].name: duplicate phase name 'base'"),
        ({"phases": PLAN[:1], "space": {"loss.name": ["none"]}}, "space: a study with phases"),
        ({"phases": [{"name": "x", "space": {"loss.alpha": {"low": 0.1, "high": 0.9}}}]}, "phases are grids"),
        ({"space": {"loss.name": ["none"]}, "cv": {"folds": 1}}, "cv.folds: expected k >= 2"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            load_study(_study(tmp_path, **data))


def test_a_cv_study_repeats_every_trial_over_folds(tmp_path, synth_wound):
    study, _ = load_study(_study(tmp_path, space={"loss.name": ["none", "vanilla"]}, cv={"folds": 2}))
    trials = expand(study, ["dataset=synthetic-wound", f"dataset.root={synth_wound}"])
    assert [(t.point["loss.name"], t.fold) for t in trials] == [
        ("none", 0),
        ("none", 1),
        ("vanilla", 0),
        ("vanilla", 1),
    ]
    assert len({t.config_hash for t in trials}) == 4


def test_choose_takes_the_best_mean_dev_and_the_earlier_on_ties():
    def row(exp_id, dev, seed, defining):
        return {"exp_id": exp_id, "dev": dev, "point": {}, "run_id": f"{exp_id}-{seed}", "defining": defining}

    rows = [
        row("A", 0.9, 0, ["a"]),
        row("A", 0.5, 1, ["a"]),  # mean 0.7 despite the best single run
        row("B", 0.75, 0, ["b"]),
        row("B", 0.75, 1, ["b"]),
        row("C", 0.75, 0, ["c"]),
        row("C", 0.75, 1, ["c"]),
        row("D", float("nan"), 0, ["d"]),
    ]
    best = choose(rows, "max")
    assert best.exp_id == "B" and best.dev == 0.75 and best.run_ids == ("B-0", "B-1")
    assert choose(rows, "min").exp_id == "A"
    assert choose([], "max") is None
