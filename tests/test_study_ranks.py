"""Hodges-Lehmann estimate and CI, near-tie clustering and Benjamini-Hochberg, against
brute force and the inversion of scipy's exact signed-rank test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from medseg.evaluation.ranks import hodges_lehmann, signrank_cdf, tie_clustered
from medseg.evaluation.study.paired import bh, paired_difference


def test_hodges_lehmann_estimate_is_the_median_of_walsh_averages():
    d = np.array([0.3, -0.1, 0.25, 0.05, 0.4, -0.2, 0.15])
    walsh = [(d[i] + d[j]) / 2 for i in range(d.size) for j in range(i, d.size)]
    assert hodges_lehmann(d)[0] == pytest.approx(float(np.median(walsh)))


@pytest.mark.parametrize("seed", [0, 1])
def test_hodges_lehmann_ci_inverts_the_exact_signed_rank_test(seed):
    """The CI is the set of shifts the exact two-sided test does not reject at 5%: just
    outside each bound p < 0.05, just inside p >= 0.05 (scipy, an independent route)."""
    d = np.random.default_rng(seed).normal(0.05, 0.1, 14)
    _, lo, hi = hodges_lehmann(d)
    eps = 1e-7
    p = lambda theta: sps.wilcoxon(d - theta, method="exact").pvalue  # noqa: E731
    assert p(lo - eps) < 0.05 <= p(lo + eps)
    assert p(hi + eps) < 0.05 <= p(hi - eps)


def test_signrank_distribution_by_enumeration():
    n = 6
    sums = [sum(r for r, s in zip(range(1, n + 1), signs, strict=True) if s)
            for signs in itertools.product([0, 1], repeat=n)]
    counts = np.bincount(sums, minlength=n * (n + 1) // 2 + 1)
    assert signrank_cdf(n) == pytest.approx(np.cumsum(counts) / 2 ** n)


def test_too_few_pairs_give_no_hl_interval():
    est, lo, hi = hodges_lehmann([0.1, 0.2, 0.3, 0.4, 0.5])  # 2/2^5 > 0.05: not achievable
    assert est == pytest.approx(0.3) and lo is None and hi is None


def test_tie_clustering_chains_within_the_tolerance_and_keeps_signs():
    x = np.array([0.3, -(0.1 + 0.2), 0.5, 0.2, -0.2 - 1e-12])
    out = tie_clustered(x, 1e-9)
    assert np.unique(np.abs(out)).size == 3
    assert np.array_equal(np.sign(out), np.sign(x))
    assert np.array_equal(tie_clustered(x, 0.0), x)


def test_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, 0.20]
    # sorted 0.01 0.03 0.04 0.20 -> 0.04 0.06 0.0533 0.20 -> step-up minima
    assert bh(p) == pytest.approx([0.04, 0.05333333, 0.05333333, 0.2])
    out = bh([math.nan, 0.5, 0.01])
    assert math.isnan(out[0]) and out[1:] == pytest.approx([0.5, 0.02])


def test_paired_difference_reports_the_hl_interval():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.7, 0.9, 15)
    b = a + rng.normal(0.02, 0.01, 15)
    r = paired_difference(a, b, "dice")
    est, lo, hi = hodges_lehmann(b - a)
    assert (r["hl_estimate"], r["hl_ci_low"], r["hl_ci_high"]) == pytest.approx((est, lo, hi))
    assert r["wilcoxon_method"] == "exact"
