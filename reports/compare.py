"""Comparisons on matched seeds: paired bootstrap differences and per-configuration intervals,
and the "does KD help?" table against the model trained without distillation (`none`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reports.common import Config
from reports.query import predictions
from reports.stats import bootstrap_interval, paired_bootstrap

RESAMPLES = 1000


@dataclass
class Diff:
    """Test avg F1 of a minus b over `seeds`, with its paired bootstrap 95 % interval."""

    diff: float
    lo: float
    hi: float
    seeds: tuple[int, ...]

    @property
    def clear(self) -> bool:
        return self.lo > 0 or self.hi < 0

    @property
    def verdict(self) -> str:
        return "better" if self.lo > 0 else "worse" if self.hi < 0 else "within noise (interval contains 0)"

    def interval(self) -> str:
        return f"[{self.lo:+.4f}, {self.hi:+.4f}]"


def seeds_text(seeds: tuple[int, ...] | list[int]) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


def paired(a: Config, b: Config, seeds: tuple[int, ...]) -> Diff | None:
    """a - b over `seeds` (runs of both on the same seed paired); None without predictions."""
    if not seeds:
        return None
    pa = [predictions(a.run_of(s)) for s in seeds]
    pb = [predictions(b.run_of(s)) for s in seeds]
    if any(p is None for p in pa + pb):
        return None
    try:
        diff, lo, hi = paired_bootstrap(pa, pb, n=RESAMPLES)
    except ValueError:  # tested on different samples: no paired comparison
        return None
    return Diff(diff, lo, hi, tuple(seeds))


def bootstrap_line(a: Config, b: Config) -> tuple[str, bool]:
    """(sentence, clear) for the top two configurations on dev, from seed-paired test predictions
    on the seeds every configuration FINISHED."""
    d = paired(a, b, a.matched)
    if d is None:
        return "test predictions are missing: no bootstrap interval.", False
    verdict = (
        f"`{a.label if d.diff > 0 else b.label}` is better on test"
        if d.clear
        else "no clear winner: the interval contains 0"
    )
    text = (
        f"Top two on dev, `{a.label}` vs `{b.label}`: test avg F1 difference {d.diff:+.4f}, paired bootstrap "
        f"95 % interval {d.interval()} ({seeds_text(d.seeds)}, 1000 resamples): {verdict}."
    )
    return text, d.clear


def interval(c: Config) -> tuple[float, float, float]:
    """(test avg F1, low, high) over the matched seeds; a point without saved predictions."""
    fair = c.fair
    preds = [predictions(r) for _, r in fair.runs.iterrows()]
    if preds and all(p is not None for p in preds):
        try:
            return bootstrap_interval(preds, n=RESAMPLES)
        except ValueError:
            pass
    m = fair.mean("test/avg_f1")
    return m, m, m


def kd_help(
    cs: list[Config],
    base: Config,
    seeds: tuple[int, ...],
    keys: Callable[[Config], list[str]],
    key_header: list[str],
    what: str,
    name: Callable[[Config], str],
) -> tuple[list[str], list[Config]]:
    """(lines, configurations shown to beat `base`): a table of each configuration against the baseline
    without distillation over `seeds`, and a plain sentence on whether any beats it."""
    lines = [
        f"Test avg F1 difference against `none` (the student trained without distillation) over "
        f"{seeds_text(seeds)}, paired by seed and test sample; 95 % interval from {RESAMPLES} "
        "bootstrap resamples of the test set.",
        "",
        "| " + " | ".join(key_header) + " | Δ test avg F1 vs `none` | 95 % interval | Verdict |",
        "|" + "---|" * len(key_header) + "---:|---|---|",
    ]
    better, worse, missing = [], [], []
    for c in cs:
        d = paired(c, base, seeds)
        if d is None:
            missing.append(c)
            delta = c.on(seeds).mean("test/avg_f1") - base.on(seeds).mean("test/avg_f1")
            lines.append("| " + " | ".join(keys(c)) + f" | {delta:+.4f} | no predictions | not tested |")
            continue
        lines.append("| " + " | ".join(keys(c)) + f" | {d.diff:+.4f} | {d.interval()} | {d.verdict} |")
        if d.lo > 0:
            better.append(c)
        elif d.hi < 0:
            worse.append(c)
    lines.append("")
    if better:
        lines.append(f"Shown to beat training without distillation: {', '.join(name(b) for b in better)}.")
    else:
        why = (
            "no interval lies above 0"
            if missing
            else "every interval contains 0"
            if not worse
            else "every interval contains 0 or lies below it"
        )
        lines.append(f"**No {what} is shown to beat training without distillation** (`none`): {why}.")
    return lines + [""], better
