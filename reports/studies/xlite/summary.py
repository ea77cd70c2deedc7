"""The summary and recommendation of docs/xlite_experiments.md, generated from the numbers: the
configuration chosen on validation, whether distillation helped beyond the bootstrap noise, the
smallest and fastest students, and any pick of the study that the validation numbers do not
support."""

from __future__ import annotations

from reports.groups import Group
from reports.phased import SELECTION_PHASES, Study
from reports.stats import Diff, fmt
from reports.studies.xlite.kd_help import BEYOND, Comparison, changes


def choice_checks(study: Study) -> list[str]:
    """phases.json's picks against the best on validation the report finds over the same phases."""
    out = []
    for p in study.phases:
        got = study.chosen(p["name"])
        if not got or not p.get("best_of"):
            continue
        mine = study.best(p["best_of"])
        if mine is not None and got[1] is not None and mine.run_ids != got[1].run_ids:
            out.append(
                f"- Note: for `{p['name']}` the study chose {got[1].exp_id}, but the best validation AUC "
                f"over {', '.join(p['best_of'])} here is {mine.exp_id} ({fmt(mine.val)})."
            )
    return out


def summary_section(study: Study, three: Comparison, control: Comparison | None = None) -> list[str]:
    """The configuration to deploy, what KD adds beyond noise (against its control, and what the
    distilled student adds over the baseline), the cheapest students."""
    kd, base, d, _ = three
    chosen, how = study.selected()
    lines = ["### Summary and recommendation", ""]
    if chosen is None:
        return lines + ["No configuration FINISHED: nothing to recommend.", ""]
    final = next((r for r in study.phase("final") if r.ok), None)
    shown = final or chosen
    lines += [
        "**Best configuration found** (chosen on validation):",
        "",
        f"- CNN: {chosen.backbone}; attention: {chosen.attention}",
        f"- KD temperature: {chosen.num('loss.temperature'):g}; KD alpha: {chosen.num('loss.alpha'):g}"
        if chosen.kd
        else "- No distillation",
        f"- Validation AUC: {fmt(chosen.val)} ({chosen.exp_id})",
        f"- **Test AUC**: {fmt(shown.test)} ({shown.exp_id}); test macro-F1 {fmt(shown.macro('test', 'f1_tuned'))} "
        f"at tuned thresholds, {fmt(shown.macro('test', 'f1'))} at 0.5",
        f"- Inference time: {fmt(shown.mean('latency_ms'), 2)} ms (batch 1, median); model size: "
        f"{fmt(shown.mean('size_mb'), 2)} MB",
        "",
    ]
    if control is not None and control.diff is not None and control.a is not None and control.b is not None:
        c = control.diff
        lines.append(
            f"- KD ({control.a.exp_id}) against its α = 0 control ({control.b.exp_id}), the teacher's own "
            f"effect: test AUC {c.diff:+.4f}, 95 % interval {c.interval()}: {c.verdict(BEYOND)}."
        )
    if d is not None and base is not None and kd is not None:
        lines.append(
            f"- {' + '.join(changes(kd, base))} ({kd.exp_id}) against the baseline ({base.exp_id}), both "
            f"chosen on validation: test AUC {d.diff:+.4f}, 95 % interval {d.interval()}: {d.verdict(BEYOND)}."
        )
    done: dict[frozenset[str], Group] = {}
    for r in study.rows:  # a run listed in several phases counts once, under its first id
        if r.ok and r.phase in SELECTION_PHASES:
            done.setdefault(r.run_ids, r)
    cands = list(done.values())
    if cands:
        small = min(cands, key=lambda r: (r.mean("size_mb"), r.mean("latency_ms")))
        fast = min(cands, key=lambda r: (r.mean("latency_ms"), r.mean("size_mb")))
        lines.append(
            f"- Smallest: {small.describe()}, {fmt(small.mean('size_mb'), 2)} MB (validation AUC {fmt(small.val)}); "
            f"fastest: {fast.describe()}, {fmt(fast.mean('latency_ms'), 2)} ms (validation AUC {fmt(fast.val)})."
        )
    lines += choice_checks(study)
    lines += [
        "",
        f"**Recommendation**: {_recommendation(chosen, how, base, kd, d)}{_teacher_needed(chosen, control)}",
    ]
    tuned, half = shown.macro("test", "f1_tuned"), shown.macro("test", "f1")
    if tuned > half:  # NaN compares False: no claim without both numbers
        lines[-1] += (
            f" Apply the per-label thresholds tuned on validation: on test they give macro-F1 {fmt(tuned)} "
            f"against {fmt(half)} at 0.5."
        )
    return lines + [""]


def _teacher_needed(chosen: Group, control: Comparison | None) -> str:
    """What the control says of the chosen configuration's teacher term (only when it is that
    configuration's control): at alpha 0 the same student trains without a teacher."""
    if control is None or control.diff is None or control.a is None or control.b is None:
        return ""
    if not chosen.kd or control.a.run_ids != chosen.run_ids:
        return ""
    c, ctrl = control.diff, control.b.exp_id
    if c.sign > 0:
        return f" Against its α = 0 control ({ctrl}) the teacher term's own gain is beyond noise."
    how = "within noise" if c.sign == 0 else "below 0 beyond noise"
    return (
        f" Against its α = 0 control ({ctrl}) the teacher term's own gain is {how}: this test set does not "
        "show that the teacher is needed (at α = 0 the same student trains without one)."
    )


def _recommendation(chosen: Group, how: str, base: Group | None, kd: Group | None, d: Diff | None) -> str:
    """What to deploy: the choice on validation, qualified by what the KD bootstrap shows."""
    pick = chosen.describe()
    if d is None or base is None or kd is None:
        return f"deploy {pick} (chosen on validation, {how}); whether distillation helps is not shown here."
    if chosen.kd:
        if d.sign > 0:
            return (
                f"deploy {pick}: chosen on validation, and its test gain over the baseline is beyond noise."
            )
        if d.sign < 0:
            return (
                f"{pick} is the choice on validation, but it scored lower on test beyond noise than "
                f"{base.describe()}: prefer the student without distillation, or re-check the validation split."
            )
        cheap = min((chosen, base), key=lambda r: (r.mean("latency_ms"), r.mean("size_mb")))
        return (
            f"{pick} is the choice on validation, but its test gain over {base.describe()} is within noise; "
            f"{cheap.exp_id} is the cheaper of the two to run ({fmt(cheap.mean('latency_ms'), 2)} ms, "
            f"{fmt(cheap.mean('size_mb'), 2)} MB), and the baseline needs no teacher to train."
        )
    if d.sign > 0:
        return (
            f"deploy {pick} (chosen on validation); {kd.exp_id} with distillation scored higher on test beyond "
            "noise, but test does not choose: more validation data would settle it."
        )
    return (
        f"deploy {pick} (chosen on validation, no distillation): the best distilled student showed no test "
        "gain beyond noise, and this student needs no teacher to train."
    )
