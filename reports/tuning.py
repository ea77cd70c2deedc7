"""What the report says about an Optuna study (`search: {algorithm: optuna}`), from the store
alone: its best configuration, chosen on dev, as an experiment YAML beside the documents
(pipeline.sweeps.tuning writes it, the same bytes the sweep logged on its parent run), and the
parameters' importances by Optuna's own evaluators, repeated over fixed seeds, with their spread
and whether their ranking is stable. Every number is a dev number; test never enters.

These sections follow the document of the study's kind (a KD study's in kd_sensitivity.md); a
study of a kind without a document gets one of its own, `<dataset>_<study>_tuning.md`.
Optuna and scikit-learn are imported only when an Optuna sweep is reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from pipeline.config.study import short
from pipeline.sweeps.tuning import Best, best_yaml, fair_rows, file_name, point_text
from reports.groups import configs
from reports.markdown import table
from reports.query import Sweep, run_text, sweep_text
from reports.registry import Document
from reports.stats import fmt, mean_std

REPEATS = 5  # seeds 0..4 of each evaluator: enough to see a spread, a second or two per sweep
MIN_CONFIGS = 4  # below this, a forest fitted to the trials says nothing about the space
EVALUATORS = ("fANOVA", "mean decrease in impurity")


def tuned(sweeps: Sequence[Sweep]) -> list[Sweep]:
    return [s for s in sweeps if s.search == "optuna"]


def _study(sweep: Sweep) -> dict:
    """The study file as the sweep logged it (parent artifact study.yaml); {} if missing."""
    text = sweep_text(sweep, "study.yaml")
    data = yaml.safe_load(text) if text else None
    return data if isinstance(data, dict) else {}


def _rows(sweep: Sweep) -> list[Mapping[str, Any]]:
    """trials.json rows whose run is FINISHED in the store (only those count)."""
    done = set(sweep.runs["run_id"]) if not sweep.runs.empty else set()
    return [t for t in sweep.trials if t.get("run_id") in done]


def best(sweep: Sweep) -> tuple[Best, str] | None:
    """The chosen configuration and its YAML text, as the sweep wrote it on its parent run."""
    study = _study(sweep)
    by_id = {r["run_id"]: r for _, r in sweep.runs.iterrows()} if not sweep.runs.empty else {}
    return best_yaml(
        _rows(sweep),
        study=sweep.study,
        dataset=sweep.dataset,
        metric=study.get("metric", "dev/avg_f1"),
        mode=study.get("mode", "max"),
        sweep_run_id=sweep.run_id,
        config_text=lambda rid: run_text(by_id[rid], "config.yaml") if rid in by_id else None,
    )


def best_files(sweeps: Sequence[Sweep]) -> list[Document]:
    """Each Optuna sweep's best configuration as a file for docs/ (written as is, indexed)."""
    out = []
    for s in tuned(sweeps):
        found = best(s)
        if found is not None:
            about = f"the best configuration of optuna study {s.study} on {s.dataset}, chosen on dev"
            out.append(Document(file_name(s.dataset, s.study), [s], csv=found[1], about=about))
    return out


# --------------------------------------------------------------------------- importances
@dataclass
class Importances:
    """Each evaluator's normalised importance of each parameter, one value per seed; or, when
    there is nothing to compute, `reason` (a sentence)."""

    params: list[str]
    values: dict[str, dict[str, list[float]]]  # evaluator -> parameter -> one value per seed
    configs: int
    reason: str = ""


def _name(key: str) -> str:
    return key.split(",")[0].strip()  # tied keys ("teacher.x,student.x") set one value


def _distribution(spec: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(spec, list | tuple):
        return CategoricalDistribution(tuple(dict.fromkeys(short(v) for v in spec)))
    if spec.get("int"):
        return IntDistribution(int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
    return FloatDistribution(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))


def _value(spec: Any, v: Any) -> Any:
    return short(v) if isinstance(spec, list | tuple) else int(round(v)) if spec.get("int") else float(v)


def importances(
    points: Sequence[Mapping[str, Any]], values: Sequence[float], space: Mapping[str, Any], mode: str
) -> Importances:
    """Optuna's fANOVA and mean-decrease-in-impurity importances of the `space` keys, each
    computed REPEATS times (seeds 0..REPEATS-1) on an in-memory study of one trial per
    configuration (`points`, their mean dev `values`)."""
    params = [_name(k) for k in space]
    n = len(points)
    if n < MIN_CONFIGS:
        why = (
            f"Too few configurations to estimate importances: {n} with a dev value on the seeds "
            f"every configuration ran; at least {MIN_CONFIGS} are needed (raise `search.num_samples`)."
        )
        return Importances(params, {}, n, why)
    if len(params) == 1:
        why = f"One parameter (`{params[0]}`): its importance is 1 by construction; there is nothing to rank."
        return Importances(params, {}, n, why)
    if len(set(values)) == 1:
        why = (
            f"Every configuration reached the same mean dev value ({fmt(values[0])}): no parameter "
            "explains a difference, and importances are undefined."
        )
        return Importances(params, {}, n, why)
    import optuna
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        get_param_importances,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict[str, dict[str, list[float]]] = {e: {p: [] for p in params} for e in EVALUATORS}
    try:  # one sweep whose runs do not fit its logged space must not stop every document
        dists = {_name(k): _distribution(spec) for k, spec in space.items()}
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
        study.add_trials(
            [
                optuna.trial.create_trial(
                    params={_name(k): _value(spec, p[k]) for k, spec in space.items()},
                    distributions=dists,
                    value=float(v),
                )
                for p, v in zip(points, values, strict=True)
            ]
        )
        kinds = (FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator)
        for name, kind in zip(EVALUATORS, kinds, strict=True):
            for seed in range(REPEATS):
                got = get_param_importances(study, evaluator=kind(seed=seed), params=params, normalize=True)
                for p in params:
                    out[name][p].append(float(got.get(p, 0.0)))
    except (ValueError, RuntimeError) as e:  # a point outside its range; a tree of zero variance
        why = f"Importances could not be computed from these runs: {type(e).__name__}: {' '.join(str(e).split())}"
        return Importances(params, {}, n, why[:300])
    return Importances(params, out, n)


def stability(imp: Importances) -> str:
    """One sentence: whether every computation orders the parameters the same way."""
    rankings = [
        tuple(sorted(imp.params, key=lambda p, e=e, i=i: (-imp.values[e][p][i], p)))
        for e in EVALUATORS
        for i in range(REPEATS)
    ]
    total = len(rankings)
    how = f"{total} computations ({' and '.join(EVALUATORS)}, seeds 0-{REPEATS - 1} each)"
    if len(set(rankings)) == 1:
        order = " > ".join(f"`{p}`" for p in rankings[0])
        return f"The ranking is stable: all {how} order the parameters the same way ({order})."
    first = Counter(r[0] for r in rankings)
    tops = ", ".join(f"`{p}` in {c}" for p, c in sorted(first.items(), key=lambda x: (-x[1], x[0])))
    return (
        f"The ranking is not stable: the {how} do not all order the parameters the same way "
        f"(stable here means every computation gives the same order); first place went to {tops}. "
        "Read these importances as a hint, not a measurement; more trials (`search.num_samples`) narrow them."
    )


def importance_lines(imp: Importances) -> list[str]:
    if imp.reason:
        return [imp.reason, ""]
    fanova = EVALUATORS[0]
    order = sorted(imp.params, key=lambda p: (-float(np.mean(imp.values[fanova][p])), p))
    rows = [[f"`{p}`", *(mean_std(imp.values[e][p], 3) for e in EVALUATORS)] for p in order]
    return [
        f"Optuna's evaluators on {imp.configs} configurations (one trial each: its mean dev value), "
        f"each computed {REPEATS} times with seeds 0-{REPEATS - 1}: mean ± std of the normalised "
        "importance (each computation's importances sum to 1).",
        "",
        *table(["Parameter", *EVALUATORS], rows, "lrr"),
        "",
        stability(imp),
        "",
    ]


# --------------------------------------------------------------------------- sections
def section(sweep: Sweep) -> list[str]:
    """The best configuration and the parameter importances of one Optuna sweep."""
    study = _study(sweep)
    metric, mode = study.get("metric", "dev/avg_f1"), study.get("mode", "max")
    lines = [f"## Best configuration: `{sweep.study}` on {sweep.dataset} (Optuna)", ""]
    found = best(sweep)
    if found is None:
        lines += ["No configuration FINISHED on a seed every configuration ran: nothing to export.", ""]
    else:
        b, name = found[0], file_name(sweep.dataset, sweep.study)
        lines += [
            f"Chosen on dev, never on test: `{point_text(b.point)}`, mean {metric} {fmt(b.mean_dev)} "
            f"over seed(s) {', '.join(str(s) for s in b.seeds)} ({mode}). Its run of seed {b.seed} "
            f"(`{b.run_id}`, dev {fmt(b.dev)}) is the experiment [{name}]({name}) beside this document; "
            f"rerun it with `python -m pipeline run docs/{name}`.",
            "",
        ]
    lines += [f"## Parameter importances: `{sweep.study}` on {sweep.dataset}", ""]
    space = study.get("space") or {}
    if not space:
        return lines + ["The sweep's study.yaml (its search space) is missing: no importances.", ""]
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for r in fair_rows(_rows(sweep)):
        if all(k in r["point"] for k in space):
            groups.setdefault(tuple(r["defining"]), []).append(r)
    points = [g[0]["point"] for g in groups.values()]
    values = [float(np.mean([r["dev"] for r in g])) for g in groups.values()]
    return lines + importance_lines(importances(points, values, space, mode))


def sections(sweeps: Sequence[Sweep]) -> list[str]:
    """The Optuna sections of a document's sweeps (none for grid or random sweeps)."""
    return [line for s in tuned(sweeps) for line in section(s)]


def documents(sweeps: Sequence[Sweep], registered: set[str]) -> list[Document]:
    """A document for each Optuna sweep whose kind has none: its configurations by dev, then
    the sections above."""
    out = []
    for s in tuned(sweeps):
        if s.kind in registered:
            continue
        metric = _study(s).get("metric", "dev/avg_f1")
        lines = [
            f"# Optuna study `{s.study}` on {s.dataset}",
            "",
            f"Sweep run `{s.run_id}` ({s.start_time}).",
            "",
        ]
        rows = [[f"`{c.label}`", c.cell(f"best_{metric}"), c.cell("test/avg_f1"), c.name] for c in configs(s)]
        lines += [f"Configurations, best {metric} first (test shown, never used to choose):", ""]
        lines += table(["Configuration", metric, "Test avg F1", "Run"], rows, "lrrl") + [""]
        out.append(Document(f"{s.dataset}_{s.study}_tuning.md", [s], lines + section(s)))
    return out
