"""docs/mil_loss_analysis.md: seed 002's "Loss Function Analysis for Dual-Stream MIL", measured.

The seed's structure (executive summary, context, one section per option with its verdict, final
decision) filled in from the run database: the stability rule in numbers (reports.mil_data), each
option's per-fold evidence, the choice on validation AUC among the stable options, paired
t-intervals over folds, a CV summary from metrics.json, per-epoch AUC and ROC plots, failures.
"""

from __future__ import annotations

import math
from pathlib import Path

from reports.mil_data import (
    KD,
    LOSS_MAX,
    LOSS_MIN,
    MAX_DROP,
    MAX_UNSTABLE_FOLDS,
    OPTIONS,
    PREFERENCE,
    SHORT,
    SUMMARY_KEYS,
    TITLES,
    MilStudy,
    Option,
    cell,
    fold_metrics,
    num,
    paired,
)
from reports.mil_plots import context_section, failed_section, plots_section, teacher_line
from reports.stats import fmt, mean_std

SEED = {
    "ldam_drw": "The seed rejected LDAM + DRW as proven unstable (ResNet50-3D runs with the loss collapsing "
    "to ≈ 0.001 or exploding > 100 and validation AUC fluctuating 0.30–0.90 across consecutive epochs) "
    "and as a mismatch for bag-level supervision.",
    "focal": "The seed rejected Focal Loss on arguments, not measurements: over-amplifying noisy slices, "
    "a conflict with the dual-stream aggregation, γ to tune, and a moderate (2.8:1) imbalance.",
    "ce_weighted": "The seed chose CE + WeightedRandomSampler for its stability, MIL compatibility and "
    "consistency with the other models.",
    KD: "Not one of the seed's three loss options: a fourth configuration, reported beside them to show "
    "whether bag-level distillation trains; it is never a candidate of the choice.",
}
NAMES = {"balanced_accuracy": "Balanced accuracy", "f1": "F1", "auc": "Test AUC"}


def _stab(o: Option) -> str:
    return f"{len(o.unstable)} of {len(o.folds)} folds unstable, at most {MAX_UNSTABLE_FOLDS} allowed"


def _trips(o: Option) -> str:
    return "; ".join(f"fold {f.fold}: {', '.join(f.reasons())}" for f in o.unstable)


def _diff(c: Option, o: Option) -> str:
    d = paired(c, o)
    if d is None:
        return "fewer than 2 shared folds: no interval"
    folds = ", ".join(str(f) for f in d.folds)
    return (
        f"{c.short} − {o.short} = {d.diff:+.4f} over folds {folds}, 95 % t-interval {d.interval()}: "
        f"{c.short} {d.verdict}"
    )


def verdict(ms: MilStudy, o: Option) -> str:
    c = ms.chosen()
    if o.phase not in OPTIONS:
        line = f"— not a candidate ({'stable' if o.stable else 'unstable'}: {_stab(o)}"
        line += f"; {_trips(o)})" if o.unstable else ")"
        if c is not None:
            line += f"; mean validation AUC {fmt(o.mean('val'))} against {fmt(c.mean('val'))}: {_diff(c, o)}"
        return line + "."
    if o is c:
        return (
            f"✅ CHOSEN: stable ({_stab(o)}) and the highest mean validation AUC of the stable loss options "
            f"({fmt(o.mean('val'))} over {len(o.per_fold('val'))} folds)."
        )
    if not o.stable:
        return f"❌ REJECTED: unstable ({_stab(o)}): {_trips(o) or 'no FINISHED fold'}."
    if c is None:
        return f"❌ REJECTED: stable ({_stab(o)}) but no validation AUC."
    if o.mean("val") == c.mean("val"):
        return f"❌ REJECTED: stable, equal mean validation AUC; ties go to {c.short} ({', '.join(PREFERENCE)} order)."
    return (
        f"❌ REJECTED: stable ({_stab(o)}) but lower mean validation AUC by "
        f"{c.mean('val') - o.mean('val'):.4f} ({fmt(o.mean('val'))} against {fmt(c.mean('val'))}; {_diff(c, o)})."
    )


def summary_section(ms: MilStudy) -> list[str]:
    c = ms.chosen()
    lines = ["### Executive summary", ""]
    if c is None:
        return lines + [
            "**CHOSEN LOSS**: none: no loss option is stable by the rule below.",
            "",
            f"**STATUS**: ❌ no choice: every loss option run has more than {MAX_UNSTABLE_FOLDS} unstable "
            "fold (see the verdicts below).",
            "",
        ]
    seed = "the same choice as the seed" if c.phase == "ce_weighted" else "not the seed's choice (CE + WRS)"
    return lines + [
        f"**CHOSEN LOSS**: {c.title} (`{c.phase}`), by the stability rule below: {seed}.",
        "",
        f"- Validation AUC (held-out fold, CV mean ± std): {mean_std(c.per_fold('val').values())}",
        f"- Test AUC (held-out test set, mean ± std over the fold models): {mean_std(c.per_fold('test').values())}",
        "",
        f"**STATUS**: ✅ stable ({_stab(c)}); chosen on validation AUC, never on test.",
        "",
    ]


def rule_section(ms: MilStudy) -> list[str]:
    t = ms.task
    lines = [
        "### The stability rule",
        "",
        "A fold of an option (its runs over seeds) is **unstable** if any run of it has:",
        "",
        "1. a non-finite loss (`stability/nonfinite` = 1);",
        f"2. a training loss below {LOSS_MIN:g} at some epoch (`stability/train_loss_min`; the seed's collapse);",
        f"3. a training loss above {LOSS_MAX:g} at some epoch (`stability/train_loss_max`; the seed's explosion);",
        f"4. a validation AUC fall above {MAX_DROP:g} between consecutive epochs (`stability/max_auc_drop`; "
        "the seed's 0.30–0.90 swings fall as well as rise; a rise alone is learning, so max |ΔAUC| is shown "
        "beside it, not ruled on);",
        "5. a collapsed epoch (every validation bag predicted as one class) in the second half of training: "
        "`stability/collapsed_epochs` counts collapsed epochs over all E epochs, not which, so the rule is "
        "collapsed epochs > ⌊E/2⌋, which puts at least one in epochs ⌊E/2⌋+1..E. Early warm-up collapses "
        "never trip it; a single late collapse may not (a lower bound);",
        "6. or no FINISHED run (FAILED, stopped or never started), whatever the reason.",
        "",
        "A number neither logged nor computable from the per-epoch history does not trip its rule (n/a). "
        f"An option is **stable** when at most {MAX_UNSTABLE_FOLDS} of its folds is unstable. Among the "
        f"stable loss options ({', '.join(SHORT[p] for p in OPTIONS)}; KD is reported, not a candidate) the "
        f"highest mean validation AUC (`best_dev/{t}/auc` over the folds with a FINISHED run) is chosen; "
        f"ties go to the simpler option ({', '.join(SHORT[p] for p in PREFERENCE)}). Test never chooses.",
        "",
    ]
    c = ms.chosen()
    if c is None:
        return lines
    lines += [
        "Paired comparison of the chosen option on validation AUC: each fold validates every option on "
        "the same bags, so the per-fold differences are paired; 95 % t-interval over the shared folds "
        "(mean ± t(0.975, n − 1) · s / √n).",
        "",
        f"| Against | Folds | Mean Δ validation AUC ({c.short} − other) | 95 % interval | Within noise? |",
        "|---|---|---:|---|---|",
    ]
    for o in ms.options:
        if o is c:
            continue
        d = paired(c, o)
        if d is None:
            lines.append(f"| {o.short} | {len(o.per_fold('val'))} | n/a | fewer than 2 shared folds | n/a |")
            continue
        noise = "yes (contains 0)" if d.lo <= 0 <= d.hi else f"no: {c.short} {d.verdict.split(' (')[0]}"
        lines.append(
            f"| {o.short} | {', '.join(str(f) for f in d.folds)} | {d.diff:+.4f} | {d.interval()} | {noise} |"
        )
    return lines + [""]


def option_section(ms: MilStudy, o: Option) -> list[str]:
    c = ms.chosen()
    if o.phase in OPTIONS:
        mark = "✅ CHOSEN" if o is c else "❌ REJECTED"
        head = f"### Option {OPTIONS.index(o.phase) + 1}: {o.title} {mark}"
    else:
        head = f"### {o.title} — not one of the seed's loss options"
    conf = ", ".join(f"{k}=`{o.param(k) or '?'}`" for k in ("loss.label_loss", "train.sampler", "loss.name"))
    lines = [head, "", f"Phase `{o.phase}`" + (f" (id {o.pid})" if o.pid else "") + f"; {conf}.", ""]
    lines += [
        "| Fold | Val AUC | Test AUC | max \\|ΔAUC\\| | max AUC fall | std AUC (last half) | Loss min | Loss max | "
        "Collapsed epochs | Stable? |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for f in o.folds:
        why = f.reasons()
        ok = "✅" if not why else "❌ " + cell("; ".join(why))
        if not f.ok:
            lines.append(f"| {f.fold} | - | - | - | - | - | - | - | - | {ok} |")
            continue
        col, ep = f.worst("collapsed"), f.worst("epochs")
        coll = "n/a" if math.isnan(col) else f"{col:g} of {ep:g}"
        lines.append(
            f"| {f.fold} | {fmt(f.row.val)} | {fmt(f.row.test)} | {fmt(f.worst('jump'))} | {fmt(f.worst('drop'))} | "
            f"{fmt(f.worst('std_half'))} | "
            f"{num(f.worst('loss_min', low=True))} | {num(f.worst('loss_max'))} | {coll} | {ok} |"
        )
    lines += [
        "",
        f"CV over {len(o.per_fold('val'))} of {len(o.folds)} folds: validation AUC {mean_std(o.per_fold('val').values())}, "
        f"test AUC {mean_std(o.per_fold('test').values())}. Several seeds: fold values are means over seeds, "
        "stability columns the worst seed.",
    ]
    derived = {f.fold: sorted({d for e in f.evidence for d in e.derived}) for f in o.folds}
    if any(derived.values()):
        lines.append(
            "Not logged, computed from the per-epoch history (std: population std over epochs ⌊E/2⌋+1..E): "
            + "; ".join(f"fold {k}: " + ", ".join(f"`{d}`" for d in v) for k, v in derived.items() if v)
            + "."
        )
    u, n = len(o.unstable), len(o.folds)
    measured = f"stable on {n - u} of {n} folds, mean validation AUC {fmt(o.mean('val'))}"
    if o.phase == "ldam_drw":
        measured += (
            ": the instability the seed reports is reproduced here."
            if not o.stable
            else ": the data do not show the instability the seed reports."
        )
    else:
        measured += "."
    lines += [
        "",
        *teacher_line(o, ms.task),
        f"**Seed**: {SEED.get(o.phase, 'Not in the seed.')}",
        "",
        f"**Measured here**: {measured}",
    ]
    return lines + ["", f"**Verdict**: {verdict(ms, o)}", ""]


def decision_section(ms: MilStudy, img: Path) -> list[str]:
    c = ms.chosen()
    lines = ["### Final decision and justification", ""]
    if c is None:
        lines += [
            "No loss option is stable by the rule: no choice. "
            + "; ".join(f"{o.short}: {_stab(o)}" for o in ms.candidates)
            + ".",
            "",
        ]
    else:
        lines += [
            f"The choice is **{c.title}** (`{c.phase}`): {verdict(ms, c).removeprefix('✅ CHOSEN: ')}",
            "",
        ]
        for o in ms.options:
            if o is not c:
                lines.append(f"- {o.short}: {verdict(ms, o)}")
        top = ms.top("test")
        if top is not None and top is not c:
            lines.append(
                f"- On test, {top.short} has the highest mean test AUC ({fmt(top.mean('test'))} against "
                f"{fmt(c.mean('test'))}); test does not choose."
            )
        lines.append("")
    shown = ms.options
    lines += [
        "Per fold, validation AUC / test AUC:",
        "",
        "| Fold | " + " | ".join(o.short for o in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    folds = sorted({f.fold for o in shown for f in o.folds})
    for k in folds:
        cells = []
        for o in shown:
            v, t = o.per_fold("val").get(k), o.per_fold("test").get(k)
            cells.append("failed" if v is None and t is None else f"{fmt(v)} / {fmt(t)}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += [
        "| **Mean** | " + " | ".join(f"{fmt(o.mean('val'))} / {fmt(o.mean('test'))}" for o in shown) + " |",
        "",
    ]
    pos = None
    lines += [
        "CV summary on the held-out test set from each run's `metrics.json` (mean ± std over folds):",
        "",
        "| Configuration | Folds | " + " | ".join(NAMES.get(k, k.capitalize()) for k in SUMMARY_KEYS) + " |",
        "|---|---:|" + "---:|" * len(SUMMARY_KEYS),
    ]
    for o in shown:
        got = [m for m in (fold_metrics(f) for f in o.folds if f.ok) if m]
        pos = pos or next((m.get("positive_class") for m in got if m.get("positive_class") is not None), None)
        cells = [mean_std([m[k] for m in got]) for k in SUMMARY_KEYS]
        lines.append(f"| {o.short} | {len(got)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Positive class (sensitivity, specificity, F1): {pos if pos is not None else 'not recorded'}.",
        "",
    ]
    return lines + plots_section(ms, img)


def document(studies: list[MilStudy], img: Path) -> list[str]:
    lines = [
        "# Loss Function Analysis for Dual-Stream MIL",
        "",
        "Seed 002's loss choice for the dual-stream MIL model (patient bags of slices), measured: every "
        "configuration trained with patient-level cross-validation, from the latest MIL sweep per dataset. "
        "Choices are made on validation AUC (the restored best-epoch checkpoint on the held-out fold), never on "
        "test; test numbers are shown beside them. ± is the sample std (n − 1) over folds.",
        "",
    ]
    for ms in studies:
        s = ms.sweep
        lines += [
            f"## {s.dataset}",
            "",
            f"Sweep run `{s.run_id}` ({s.start_time}); task `{ms.task}`; seeds: {', '.join(map(str, s.seeds)) or '?'}.",
            "",
        ]
        lines += summary_section(ms) + rule_section(ms) + context_section(ms)
        for i, phase in enumerate(OPTIONS, 1):  # the seed's options in its order, run or not
            o = ms.option(phase)
            lines += (
                option_section(ms, o)
                if o is not None
                else [
                    f"### Option {i}: {TITLES[phase]} — not run",
                    "",
                    f"No `{phase}` phase in this sweep.",
                    "",
                ]
            )
        for o in ms.options:
            if o.phase not in OPTIONS:
                lines += option_section(ms, o)
        lines += decision_section(ms, img) + failed_section(ms)
    return lines
