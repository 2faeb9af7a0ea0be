"""Rank statistics of paired differences: near-tie handling and the Hodges-Lehmann estimate.

* :func:`tie_clustered`: absolute values within a tolerance of each other (chained, after
  sorting) are made exactly equal, keeping signs, so that a rank test sees ties where the
  arithmetic differs only in the last bits (``0.1 + 0.2`` against ``0.3``).
* :func:`hodges_lehmann`: the Hodges-Lehmann one-sample estimate (median of the
  ``n (n + 1) / 2`` Walsh averages ``(d_i + d_j) / 2, i <= j``) and its distribution-free
  confidence interval (Hollander & Wolfe; R ``wilcox.test(conf.int = TRUE)``): with ``W`` the
  sorted Walsh averages, ``M = n (n + 1) / 2`` and ``k`` the ``tail``-quantile of the
  signed-rank statistic (smallest ``k`` with ``P(T <= k) >= tail``, ``k >= 1``), the interval
  is ``[W_k, W_{M - k + 1}]``. The null distribution is exact (:func:`signrank_cdf`) without
  ties for n < 50; with ties or more pairs ``k`` comes from the normal approximation
  ``floor(M / 2 - z sqrt(n (n + 1) (2n + 1) / 24))`` (R solves the approximate test for its
  bound numerically instead, which can differ by one order statistic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps


def tie_clustered(values: Sequence[float] | np.ndarray, tol: float) -> np.ndarray:
    """``values`` with absolute values within ``tol`` of their sorted neighbour set equal."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return x.copy()
    mag = np.abs(x)
    order = np.argsort(mag, kind="stable")
    sorted_mag = mag[order]
    starts = np.concatenate(([True], np.diff(sorted_mag) > tol))
    group_first = sorted_mag[starts][np.cumsum(starts) - 1]
    out = np.empty_like(x)
    out[order] = group_first
    return np.sign(x) * out


def signrank_cdf(n: int) -> np.ndarray:
    """``P(T+ <= t)`` for ``t = 0 .. n(n+1)/2`` under the null, no ties (exact recursion)."""
    m = n * (n + 1) // 2
    counts = np.zeros(m + 1)
    counts[0] = 1.0
    for i in range(1, n + 1):
        counts[i:] = counts[i:] + counts[:-i].copy()
    return np.cumsum(counts) / 2.0 ** n


def walsh_averages(d: np.ndarray) -> np.ndarray:
    """Sorted ``(d_i + d_j) / 2`` for ``i <= j``."""
    i, j = np.triu_indices(d.size)
    return np.sort((d[i] + d[j]) / 2.0)


def hodges_lehmann(d: Sequence[float] | np.ndarray, tail: float = 0.025
                   ) -> tuple[float, float | None, float | None]:
    """(estimate, lower, upper): the Hodges-Lehmann estimate and its CI (``tail`` in each
    tail); NaN estimate without data, None bounds when n is too small for the level."""
    x = np.asarray(d, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return math.nan, None, None
    w = walsh_averages(x)
    est = float(np.median(w))
    m = w.size
    ties = np.unique(np.abs(x)).size < n
    if n < 50 and not ties:
        cdf = signrank_cdf(n)
        # smallest k with P(T <= k) >= tail (R's qsignrank); [W_k, W_{M-k+1}] then covers
        # with probability 1 - 2 P(T <= k - 1) >= 1 - 2 tail
        k = int(np.searchsorted(cdf, tail - 1e-12))
        if k < 1:
            return est, None, None  # too few pairs for this level (R warns and widens)
    else:
        z = float(sps.norm.ppf(1.0 - tail))
        k = math.floor(m / 2.0 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0))
        if k < 1:
            return est, None, None
    return est, float(w[k - 1]), float(w[m - k])
