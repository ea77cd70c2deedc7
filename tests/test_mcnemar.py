"""McNemar's test, Holm's adjustment and the bootstrap p, against hand-computed cases and scipy's
reference implementations on the same numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from reports.mcnemar import McNemar, mcnemar
from reports.resample import boot_p
from reports.stats import Diff, holm, holm_adjusted


def test_mcnemar_by_hand():
    # b = 10, c = 2: exact p = 2 P(X <= 2), X ~ Bin(12, 1/2) = 2 (1 + 12 + 66) / 4096
    t = McNemar(10, 2)
    assert t.p_exact == pytest.approx(2 * 79 / 4096, abs=1e-12)
    # Edwards: (|10 - 2| - 1)^2 / 12 = 49 / 12 on 1 df
    assert t.chi2 == pytest.approx(49 / 12)
    assert t.p_chi2 == pytest.approx(math.erfc(math.sqrt(49 / 12 / 2)), abs=1e-12)  # chi2(1) sf
    assert McNemar(0, 0).p_exact == McNemar(0, 0).p_chi2 == 1.0  # no discordant pair: no evidence
    assert McNemar(3, 3).p_exact == 1.0


@pytest.mark.parametrize("b,c", [(0, 5), (7, 1), (4, 4), (25, 40), (1, 0), (120, 95)])
def test_mcnemar_equals_scipys_binomial_and_chi2(b, c):
    t = McNemar(b, c)
    assert t.p_exact == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-9)
    assert t.p_chi2 == pytest.approx(stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1), rel=1e-9)


def test_mcnemar_counts_the_discordant_pairs():
    a = np.array([1, 1, 1, 0, 0, 1], bool)  # A right
    b = np.array([1, 0, 0, 1, 0, 1], bool)  # B right
    assert mcnemar(a, b) == McNemar(b=2, c=1)


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    got = holm([0.01, 0.04, 0.03, 0.005])
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    nan = holm([0.01, math.nan, 0.02])  # a comparison that could not be made is not counted
    assert nan[0] == pytest.approx(0.02) and math.isnan(nan[1]) and nan[2] == pytest.approx(0.02)


def test_a_family_is_judged_by_the_adjusted_p():
    # alone, each interval excludes 0; as a family of three, 0.01 x 3 = 0.03 passes, 0.03 x 2 = 0.06
    # does not, and 0.04 x 1 is held up to 0.06 by the step-down
    diffs = [Diff(0.05, 0.01, 0.09, p=0.01), Diff(0.04, 0.001, 0.08, p=0.04), Diff(0.03, 0.002, 0.06, p=0.03)]
    assert [d.sign for d in diffs] == [1, 1, 1]
    judged = holm_adjusted(diffs)
    assert [round(d.p_adj, 4) for d in judged] == [0.03, 0.06, 0.06]
    assert [d.sign for d in judged] == [1, 0, 0] and judged[0].family == 3
    assert judged[1].p_cell() == "0.060" and "adjusted p" in judged[1].verdict(_words())
    one = holm_adjusted([diffs[1], None])  # a family of one keeps the interval's rule
    assert one[0].family == 1 and one[0].sign == 1 and one[1] is None


def _words():
    from reports.matched import BETTER

    return BETTER


def test_the_bootstrap_p_is_the_intervals_dual():
    rng = np.random.default_rng(0)
    d = rng.normal(0.1, 0.04, 1000)
    lo, hi = np.percentile(d, [2.5, 97.5])
    assert (boot_p(d) < 0.05) == (lo > 0 or hi < 0)
    assert boot_p(np.zeros(10)) == 1.0  # identical predictions: no evidence at all
    assert boot_p(np.r_[np.ones(990), -np.ones(10)]) == pytest.approx(0.02)
