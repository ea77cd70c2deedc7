"""Run names, built here and nowhere else. The MLflow UI's runs list and chart legends show
about the first fifteen characters of a name, so a sweep's runs start with what varies in
their study (`vanilla-s0`, `film-l2-h4-s1`, `KD_003-efficientnet_b0-T8-a0.7-s0-fold2`); what
every run of the study shares (dataset, fusion, backbones) is in the run's tags and
description. A run outside a study (`python -m pipeline run`) varies nothing: it keeps a full
name that reads on its own. Nothing parses these names: reports read tags, params and the
sweep's trials.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.schema import ExperimentConfig
from pipeline.config.study import short

# the short forms of keys studies vary often (fusion layers and heads, KD's tau and alpha)
ABBREV = {"layers": "l", "heads": "h", "temperature": "T", "alpha": "a"}


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"  # a sampled rate or weight: the digits a reader tells apart
    return short(value)


def point_part(key: str, value: Any) -> str:
    """One space entry: a name (or a section, by its name) as itself, a hub id by its last
    part; a number after its key's short form (`l2`, `T4`); any other value as key=value
    (`attention=mhsa`, `pretrained=true`: the value alone would not say what it is)."""
    last = key.split(",")[0].strip().split(".")[-1]
    if isinstance(value, Mapping) or last == "name":
        return _value(value).rsplit("/", 1)[-1]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{ABBREV.get(last, last)}{_value(value)}"
    return f"{ABBREV.get(last, last)}={_value(value)}"


def _tail(seed: int, fold: int | None) -> list[str]:
    return [f"s{seed}", *([f"fold{fold}"] if fold is not None else [])]


def trial_name(point: Mapping[str, Any], seed: int, exp_id: str = "", fold: int | None = None) -> str:
    """A sweep's student run: its phase's experiment id first (phased studies), then its point,
    seed and fold."""
    parts = [exp_id] if exp_id else []
    parts += [point_part(k, v) for k, v in point.items()]
    return "-".join([*parts, *_tail(seed, fold)])


def teacher_trial_name(point: Mapping[str, Any], seed: int, fold: int | None, teacher_hash: str) -> str:
    """A sweep's teacher run: the point's teacher keys, seed, fold, then the start of its teacher
    hash, which sets apart teachers the point does not (phase overrides, label losses)."""
    mine = {k: v for k, v in point.items() if any(p.strip().startswith("teacher.") for p in k.split(","))}
    parts = ["teacher", *(point_part(k, v) for k, v in mine.items()), *_tail(seed, fold)]
    return "-".join([*parts, teacher_hash[:6]])


def run_name(cfg: ExperimentConfig) -> str:
    """A student run outside a study: the full configuration in the name."""
    return f"{cfg.dataset.name}-{cfg.student.fusion.name}-{cfg.loss.name}-s{cfg.seed}"


def teacher_name(cfg: ExperimentConfig) -> str:
    """A teacher run outside a study."""
    return f"{cfg.dataset.name}-teacher-{cfg.teacher.fusion.name}-s{cfg.seed}"


def sweep_name(study: str, dataset: str) -> str:
    """The parent run of a sweep: the study first, then its dataset."""
    return f"{study}-{dataset}"


def ensemble_name(method: str, seed: int, fold: int) -> str:
    """A run of the members' fold models combined by `method`."""
    return f"ensemble-{method}-s{seed}-f{fold}"
