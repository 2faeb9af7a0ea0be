"""Paired comparison of two models scored on the same cases.

For one class and one metric, ``a`` and ``b`` are the per-case values of model A (baseline)
and model B on the cases where both are finite (the empty-mask policy makes some NaN). With
``d = b - a`` per case:

* mean difference and its confidence interval (:func:`medseg.evaluation.intervals.mean_ci` of
  ``d``: cases resampled with replacement, the same resample for both models; BCa by default;
  none below ``min_n`` pairs, with the Monte-Carlo error of each bound);
* the Wilcoxon signed-rank test of ``d`` (:func:`wilcoxon`): cases with ``|d| <= TIE_TOL``
  are dropped (Wilcoxon's treatment, ``n_wilcoxon`` says how many entered) and absolute
  differences within ``TIE_TOL`` of each other are ranked as ties (so that last-bit float
  noise cannot decide between the exact and the approximate test); then ``scipy.stats.wilcoxon``
  with an explicit method (``wilcoxon_method``): ``exact`` (no ties, n <= 50), ``permutation``
  (ties, n <= 13: all 2^n sign flips, so exact too), else ``normal`` (normal approximation
  with the tie-corrected variance and no continuity correction). R's
  ``wilcox.test(d, correct = FALSE)`` on the same non-zero ``d`` gives the same p in the
  ``exact`` and ``normal`` cases (R uses its normal approximation where we permute);
* the Hodges-Lehmann estimate (median of the Walsh averages ``(d_i + d_j) / 2, i <= j``, of the
  non-zero differences), the location estimate that goes with the signed-rank test, with its
  distribution-free CI from the Walsh averages' order statistics (R ``wilcox.test(conf.int =
  TRUE)``: exact signed-rank quantiles without ties, n < 50; otherwise the normal
  approximation of the rank, where R solves for the bound numerically);
* wins / ties / losses of B against A, "better" following the metric's direction
  (:data:`medseg.evaluation.metrics.METRIC_INFO`), a tie being ``|d| <= TIE_TOL``;
* non-inferiority at a margin ``m`` (in the metric's unit): for a higher-is-better metric B is
  non-inferior when the lower CI bound of ``d`` is above ``-m``; for a lower-is-better metric
  (HD95, ...) when the upper CI bound is below ``+m``. Below ``min_n`` pairs it is not
  decided (``non_inferior`` None, ``non_inferior_note`` says why); a bound within 2 Monte-Carlo
  SE of the margin is flagged (``non_inferior_mc_flag``);
* Holm's step-down adjustment (:func:`holm`) and Benjamini-Hochberg's FDR (:func:`bh`) of the
  p-values over a family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.evaluation.intervals import DEFAULT_STATS, StatsOptions, mean_ci, near_threshold
from medseg.evaluation.metrics import METRIC_INFO
from medseg.evaluation.ranks import hodges_lehmann, tie_clustered

#: |b - a| at or below this counts as a tie
TIE_TOL = 1e-9


def higher_is_better(metric: str) -> bool:
    """Direction of a metric (plugin metrics without an entry count as higher-is-better)."""
    return METRIC_INFO.get(metric, ("", True, ""))[1]


def wilcoxon(diff: Sequence[float] | np.ndarray) -> tuple[float, int]:
    """Two-sided Wilcoxon signed-rank p-value of paired differences and the n that entered
    (see the module docstring; :func:`wilcoxon_test` also says which method gave it)."""
    p, n, _ = wilcoxon_test(diff)
    return p, n


def wilcoxon_test(diff: Sequence[float] | np.ndarray) -> tuple[float, int, str]:
    """(p, n, method): zeros within ``TIE_TOL`` dropped, near-ties within ``TIE_TOL`` tied,
    then ``scipy.stats.wilcoxon`` with the method named in the module docstring."""
    from scipy import stats as sps

    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    nonzero = tie_clustered(d[np.abs(d) > TIE_TOL], TIE_TOL)
    n = int(nonzero.size)
    if n == 0:
        return math.nan, 0, ""
    ties = np.unique(np.abs(nonzero)).size < n
    if not ties and n <= 50:
        method: object = "exact"
        name = "exact"
    elif n <= 13:
        method = sps.PermutationMethod(n_resamples=2 ** n)
        name = "permutation"
    else:
        method = "asymptotic"
        name = "normal"
    result = sps.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided",
                          correction=False, method=method)
    return float(result.pvalue), n, name


def _finite_ascending(pvalues: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The p-values as floats, an all-NaN result of their shape, and the indices of the finite
    ones in ascending order (stable): what Holm and Benjamini-Hochberg both start from."""
    p = np.asarray(pvalues, dtype=float)
    idx = np.flatnonzero(np.isfinite(p))
    return p, np.full(p.shape, math.nan), idx[np.argsort(p[idx], kind="stable")]


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and are not counted).

    Sorted ascending, the i-th of m p-values (0-based) becomes ``(m - i) p``, made
    non-decreasing and capped at 1.
    """
    p, out, order = _finite_ascending(pvalues)
    if order.size == 0:
        return out.tolist()
    m = order.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out.tolist()


def bh(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (the false discovery rate; NaN stays NaN).

    Sorted ascending, the i-th of m p-values (1-based) becomes ``m p / i``, made
    non-decreasing from the largest down, capped at 1. Valid under independence or positive
    dependence (PRDS) of the tests, which per-class metrics of one model pair usually show.
    """
    p, out, order = _finite_ascending(pvalues)
    if order.size == 0:
        return out.tolist()
    m = order.size
    raw = m * p[order] / np.arange(1, m + 1)
    out[order] = np.minimum(1.0, np.minimum.accumulate(raw[::-1])[::-1])
    return out.tolist()


def paired_difference(
    a: Sequence[float], b: Sequence[float], metric: str, *, margin: float | None = None,
    options: StatsOptions | None = None, cases: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every paired statistic of B - A for one metric (see the module docstring).

    ``options``: intervals and the minimum n; ``cases`` name the pairs (cluster bootstrap)."""
    opts = options or DEFAULT_STATS
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired values differ in length: {x.size} and {y.size}")
    both = np.isfinite(x) & np.isfinite(y)
    x, y = x[both], y[both]
    kept = None if cases is None else [c for c, k in zip(cases, both, strict=True) if k]
    d = y - x
    higher = higher_is_better(metric)
    better = d > TIE_TOL if higher else d < -TIE_TOL
    worse = d < -TIE_TOL if higher else d > TIE_TOL
    ci = mean_ci(d, opts, cases=kept)
    lo, hi = ci["ci_low"], ci["ci_high"]
    p, n_w, w_method = wilcoxon_test(d)
    hl = hodges_lehmann(d[np.abs(d) > TIE_TOL], opts.tail)
    out: dict[str, Any] = {
        "metric": metric,
        "n_pairs": int(d.size),
        "n_excluded": int(both.size - d.size),
        "mean_a": float(x.mean()) if d.size else math.nan,
        "mean_b": float(y.mean()) if d.size else math.nan,
        "mean_diff": float(d.mean()) if d.size else math.nan,
        "ci_low": lo,
        "ci_high": hi,
        "ci_low_mc_se": ci["ci_low_mc_se"],
        "ci_high_mc_se": ci["ci_high_mc_se"],
        "ci_note": ci["ci_note"],
        "p_wilcoxon": p,
        "n_wilcoxon": n_w,
        "wilcoxon_method": w_method,
        "hl_estimate": hl[0],
        "hl_ci_low": hl[1],
        "hl_ci_high": hl[2],
        "wins": int(np.count_nonzero(better)),
        "ties": int(d.size - np.count_nonzero(better) - np.count_nonzero(worse)),
        "losses": int(np.count_nonzero(worse)),
        "higher_is_better": higher,
        "margin": margin,
        "non_inferior": None,
        "non_inferior_note": "",
        "non_inferior_mc_flag": False,
    }
    if margin is not None:
        bound, threshold = (lo, -margin) if higher else (hi, margin)
        if bound is None:
            out["non_inferior_note"] = f"not decidable ({ci['ci_note'] or 'no pairs'})"
        else:
            out["non_inferior"] = bool(bound > threshold) if higher else bool(bound < threshold)
            se = ci["ci_low_mc_se"] if higher else ci["ci_high_mc_se"]
            out["non_inferior_mc_flag"] = near_threshold(bound, se, threshold)
            if out["non_inferior_mc_flag"]:
                out["non_inferior_note"] = ("bound within 2 Monte-Carlo SE of the margin: "
                                            "rerun with more --resamples")
    return out
