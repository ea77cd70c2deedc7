"""The verdict sections of docs/mil_loss_analysis.md: the executive summary, the stability rule
with the chosen option's paired comparisons, and one section per option with its per-fold
evidence, what the seed said of it, what is measured here, and its verdict."""

from __future__ import annotations

import math

from reports.markdown import cell, table
from reports.stats import Verdicts, fmt, mean_std
from reports.studies.mil.context import teacher_line
from reports.studies.mil.data import (
    KD,
    LOSS_MAX,
    LOSS_MIN,
    MAX_DROP,
    MAX_UNSTABLE_FOLDS,
    OPTIONS,
    PREFERENCE,
    SHORT,
    TEST,
    VAL,
    MilStudy,
    Option,
    num,
    paired,
)

HIGHER = Verdicts(
    "higher beyond noise (the interval lies above 0)",
    "lower beyond noise (the interval lies below 0)",
    "within noise (the interval contains 0)",
)
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


def stab(o: Option) -> str:
    """How many folds are unstable against the rule's allowance."""
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
        f"{c.short} {d.verdict(HIGHER)}"
    )


def verdict(ms: MilStudy, o: Option) -> str:
    """Why an option is chosen, rejected or not a candidate, with the numbers that decide it."""
    c = ms.chosen()
    if o.phase not in OPTIONS:
        line = f"— not a candidate ({'stable' if o.stable else 'unstable'}: {stab(o)}"
        line += f"; {_trips(o)})" if o.unstable else ")"
        if c is not None:
            line += f"; mean validation AUC {fmt(o.mean(VAL))} against {fmt(c.mean(VAL))}: {_diff(c, o)}"
        return line + "."
    if o is c:
        return (
            f"✅ CHOSEN: stable ({stab(o)}) and the highest mean validation AUC of the stable loss options "
            f"({fmt(o.mean(VAL))} over {len(o.per_fold(VAL))} folds)."
        )
    if not o.stable:
        return f"❌ REJECTED: unstable ({stab(o)}): {_trips(o) or 'no FINISHED fold'}."
    if c is None:
        return f"❌ REJECTED: stable ({stab(o)}) but no validation AUC."
    if o.mean(VAL) == c.mean(VAL):
        return f"❌ REJECTED: stable, equal mean validation AUC; ties go to {c.short} ({', '.join(PREFERENCE)} order)."
    return (
        f"❌ REJECTED: stable ({stab(o)}) but lower mean validation AUC by "
        f"{c.mean(VAL) - o.mean(VAL):.4f} ({fmt(o.mean(VAL))} against {fmt(c.mean(VAL))}; {_diff(c, o)})."
    )


def summary_section(ms: MilStudy) -> list[str]:
    """The chosen loss (or none) up front, with its validation and test AUC."""
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
        f"- Validation AUC (held-out fold, CV mean ± std): {mean_std(c.per_fold(VAL).values())}",
        f"- Test AUC (held-out test set, mean ± std over the fold models): {mean_std(c.per_fold(TEST).values())}",
        "",
        f"**STATUS**: ✅ stable ({stab(c)}); chosen on validation AUC, never on test.",
        "",
    ]


def rule_section(ms: MilStudy) -> list[str]:
    """The stability rule in numbers, then the chosen option against each other one, paired by fold."""
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
    rows = []
    for o in ms.options:
        if o is c:
            continue
        d = paired(c, o)
        if d is None:
            rows.append([o.short, len(o.per_fold(VAL)), "n/a", "fewer than 2 shared folds", "n/a"])
            continue
        noise = "yes (contains 0)" if d.sign == 0 else f"no: {c.short} {d.verdict(HIGHER).split(' (')[0]}"
        rows.append([o.short, ", ".join(str(f) for f in d.folds), f"{d.diff:+.4f}", d.interval(), noise])
    head = [
        "Against",
        "Folds",
        f"Mean Δ validation AUC ({c.short} − other)",
        "95 % interval",
        "Within noise?",
    ]
    return [
        *lines,
        "Paired comparison of the chosen option on validation AUC: each fold validates every option on "
        "the same bags, so the per-fold differences are paired; 95 % t-interval over the shared folds "
        "(mean ± t(0.975, n − 1) · s / √n).",
        "",
        *table(head, rows, "llr"),
        "",
    ]


def _fold_rows(o: Option) -> list[list[object]]:
    rows: list[list[object]] = []
    for f in o.folds:
        why = f.reasons()
        ok = "✅" if not why else "❌ " + cell("; ".join(why))
        if not f.ok:
            rows.append([f.fold, *["-"] * 8, ok])
            continue
        col, ep = f.worst("collapsed"), f.worst("epochs")
        rows.append(
            [
                f.fold,
                fmt(f.row.val),
                fmt(f.row.test),
                fmt(f.worst("jump")),
                fmt(f.worst("drop")),
                fmt(f.worst("std_half")),
                num(f.worst("loss_min", low=True)),
                num(f.worst("loss_max")),
                "n/a" if math.isnan(col) else f"{col:g} of {ep:g}",
                ok,
            ]
        )
    return rows


def option_section(ms: MilStudy, o: Option) -> list[str]:
    """One option's per-fold evidence, what the seed said and what is measured, its verdict."""
    c = ms.chosen()
    if o.phase in OPTIONS:
        mark = "✅ CHOSEN" if o is c else "❌ REJECTED"
        head = f"### Option {OPTIONS.index(o.phase) + 1}: {o.title} {mark}"
    else:
        head = f"### {o.title} — not one of the seed's loss options"
    conf = ", ".join(f"{k}=`{o.param(k) or '?'}`" for k in ("loss.label_loss", "train.sampler", "loss.name"))
    columns = ["Fold", "Val AUC", "Test AUC", "max \\|ΔAUC\\|", "max AUC fall", "std AUC (last half)"]
    columns += ["Loss min", "Loss max", "Collapsed epochs", "Stable?"]
    lines = [head, "", f"Phase `{o.phase}`" + (f" (id {o.pid})" if o.pid else "") + f"; {conf}.", ""]
    lines += table(columns, _fold_rows(o), "l" + "r" * 8)
    lines += [
        "",
        f"CV over {len(o.per_fold(VAL))} of {len(o.folds)} folds: validation AUC {mean_std(o.per_fold(VAL).values())}, "
        f"test AUC {mean_std(o.per_fold(TEST).values())}. Several seeds: fold values are means over seeds, "
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
    measured = f"stable on {n - u} of {n} folds, mean validation AUC {fmt(o.mean(VAL))}"
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
