"""McNemar's test of two classifiers on the same test samples, per task and seed, with the
accuracy difference's paired bootstrap interval beside it and the p-values of a table
Holm-adjusted as one family.

For models A and B on one task: b = samples A gets right and B wrong, c = the reverse (the
discordant pairs; concordant ones carry no information on which is better). Under "A and B are
equally accurate" each discordant pair goes either way with probability 1/2 (McNemar 1947,
"Note on the sampling error of the difference between correlated proportions"):
- exact: p = min(1, 2 P(X <= min(b, c))), X ~ Binomial(b + c, 1/2);
- chi-square with Edwards' continuity correction: (|b - c| - 1)^2 / (b + c) on 1 degree of
  freedom (as statsmodels' `mcnemar(exact=False, correction=True)`; for b = c this gives
  1 / (b + c), not 0).
Both are 1 when there is no discordant pair. Accuracy(A) - accuracy(B) = (b - c) / n."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reports.groups import Group
from reports.markdown import table
from reports.query import predictions
from reports.resample import RESAMPLES, accuracy_scorer, paired, tasks_of
from reports.stats import Diff, fmt_p, holm


@dataclass(frozen=True)
class McNemar:
    """The discordant counts of A against B: `b` (A right, B wrong), `c` (A wrong, B right)."""

    b: int
    c: int

    @property
    def p_exact(self) -> float:
        from scipy.special import bdtr  # the binomial CDF; scipy.stats takes a second to import

        n = self.b + self.c
        return 1.0 if n == 0 else float(min(1.0, 2 * bdtr(min(self.b, self.c), n, 0.5)))

    @property
    def chi2(self) -> float:
        n = self.b + self.c
        return 0.0 if n == 0 else (abs(self.b - self.c) - 1) ** 2 / n

    @property
    def p_chi2(self) -> float:
        from scipy.special import chdtrc  # the chi-square survival function

        return 1.0 if self.b + self.c == 0 else float(chdtrc(1, self.chi2))


def mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> McNemar:
    """The counts from two models' per-sample correctness (booleans over the same samples)."""
    a_right, b_right = np.asarray(a_right, bool), np.asarray(b_right, bool)
    return McNemar(int(np.sum(a_right & ~b_right)), int(np.sum(~a_right & b_right)))


@dataclass(frozen=True)
class Pair:
    """One comparison of a table: A against B, with the names the table gives them."""

    a_name: str
    b_name: str
    a: Group
    b: Group


def _right(pred, task: str) -> np.ndarray:
    return (pred[f"{task}/label"] == pred[f"{task}/pred"]).to_numpy()


def _rows(pair: Pair, seeds: tuple[int, ...]) -> list[tuple[str, str, int, McNemar, Diff]]:
    """(comparison, task, seed, test, accuracy difference) for each task and seed that both sides
    have predictions of, on the same samples; none otherwise."""
    out = []
    for seed in seeds:
        try:
            pa, pb = predictions(pair.a.run_of(seed)), predictions(pair.b.run_of(seed))
        except (IndexError, KeyError):  # no run of this seed on one side
            continue
        if pa is None or pb is None:
            continue
        pa, pb = (
            pa.sort_values("index").reset_index(drop=True),
            pb.sort_values("index").reset_index(drop=True),
        )
        if not np.array_equal(pa["index"].to_numpy(), pb["index"].to_numpy()):
            continue  # tested on different samples: nothing to pair
        for task in tasks_of(pa):
            test = mcnemar(_right(pa, task), _right(pb, task))
            diff = paired([pa], [pb], accuracy_scorer(task), (seed,))
            out.append((f"{pair.a_name} vs {pair.b_name}", task, seed, test, diff))
    return out


def mcnemar_section(pairs: list[Pair], seeds: tuple[int, ...], title: str = "### McNemar tests") -> list[str]:
    """A table of McNemar tests, one row per comparison, task and seed, both p-values
    Holm-adjusted over the table's rows; nothing when no pair has predictions to compare."""
    rows = [r for p in pairs for r in _rows(p, seeds)]
    if not rows:
        return []
    exact = holm([t.p_exact for *_, t, _ in rows])
    chi2 = holm([t.p_chi2 for *_, t, _ in rows])
    cells, found = [], []
    for (what, task, seed, t, d), pe, pc in zip(rows, exact, chi2, strict=True):
        a, b = what.split(" vs ", 1)
        verdict = "no evidence of a difference" if not pe < 0.05 else f"{a if t.b > t.c else b} more accurate"
        if pe < 0.05:
            found.append(f"{what} ({task}, seed {seed})")
        cells.append(
            [what, task, seed, t.b, t.c, f"{d.diff:+.4f}", d.interval(), fmt_p(pe), fmt_p(pc), verdict]
        )
    head = ["Comparison (A vs B)", "Task", "Seed", "b", "c", "Δ accuracy (A − B)", "95 % interval"]
    head += ["p exact (Holm)", "p χ² (Holm)", "Verdict"]
    lines = [
        title,
        "",
        "Per test sample and task: b = A right and B wrong, c = A wrong and B right. Exact binomial "
        "and continuity-corrected χ² McNemar tests; both p-values Holm-adjusted over the "
        f"{len(rows)} comparison{'s' if len(rows) > 1 else ''} of this table; verdict from the "
        f"adjusted exact p (< 0.05). Interval: paired bootstrap of the accuracy difference ({RESAMPLES} "
        "resamples of the test set), unadjusted.",
        "",
        *table(head, cells, "llrrrrrrrl"),
        "",
    ]
    if not found:
        lines.append("No comparison in this table differs beyond chance after the adjustment.")
    else:
        lines.append(f"Differ beyond chance after the adjustment: {'; '.join(found)}.")
    return lines + [""]


def chosen_pairs(
    cs: list[Group], teacher: Group | None, mark: str, name: Callable[[Group], str] | None = None
) -> list[Pair]:
    """The comparisons every flat document tests: its teacher (marked `mark`) against the student
    chosen on dev (`cs[0]`), and the chosen student against the runner-up on dev. `name`: what
    the table calls a configuration (its trial label by default)."""
    name = name or (lambda c: f"`{c.label}`")
    out = []
    if teacher is not None and cs:
        out.append(Pair(f"teacher {mark}", name(cs[0]), teacher, cs[0]))
    if len(cs) >= 2:
        out.append(Pair(name(cs[0]), name(cs[1]), cs[0], cs[1]))
    return out
