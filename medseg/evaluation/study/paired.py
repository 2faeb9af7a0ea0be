"""Paired comparison of two models scored on the same cases.

For one class and one metric, ``a`` and ``b`` are the per-case values of model A (baseline)
and model B on the cases where both are finite (the empty-mask policy makes some NaN). With
``d = b - a`` per case:

* mean difference and its 95% paired percentile-bootstrap CI (cases resampled with
  replacement, the same resample for both models, i.e. the bootstrap of ``d``;
  :func:`medseg.evaluation.report.bootstrap_ci`);
* the Wilcoxon signed-rank test of ``d`` (``scipy.stats.wilcoxon``, two-sided,
  ``zero_method="wilcox"``: cases with ``d = 0`` are dropped, so ``n_wilcoxon`` says how many
  entered the test; exact distribution for small n without ties, normal approximation
  otherwise, as scipy chooses);
* wins / ties / losses of B against A, "better" following the metric's direction
  (:data:`medseg.evaluation.metrics.METRIC_INFO`), a tie being ``|d| <= TIE_TOL``;
* non-inferiority at a margin ``m`` (in the metric's unit): for a higher-is-better metric B is
  non-inferior when the lower CI bound of ``d`` is above ``-m``; for a lower-is-better metric
  (HD95, ...) when the upper CI bound is below ``+m``;
* Holm's step-down adjustment of the p-values over a family (:func:`holm`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.evaluation.metrics import METRIC_INFO
from medseg.evaluation.report import bootstrap_ci

#: |b - a| at or below this counts as a tie
TIE_TOL = 1e-9


def higher_is_better(metric: str) -> bool:
    """Direction of a metric (plugin metrics without an entry count as higher-is-better)."""
    return METRIC_INFO.get(metric, ("", True, ""))[1]


def wilcoxon(diff: Sequence[float] | np.ndarray) -> tuple[float, int]:
    """Two-sided Wilcoxon signed-rank p-value of paired differences and the n that entered.

    Zero differences are dropped (Wilcoxon's original treatment); with no non-zero
    difference the p-value is NaN.
    """
    from scipy.stats import wilcoxon as scipy_wilcoxon

    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    nonzero = d[np.abs(d) > TIE_TOL]
    if nonzero.size == 0:
        return math.nan, 0
    result = scipy_wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided")
    return float(result.pvalue), int(nonzero.size)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and are not counted).

    Sorted ascending, the i-th of m p-values (0-based) becomes ``(m - i) p``, made
    non-decreasing and capped at 1.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if idx.size == 0:
        return out.tolist()
    order = idx[np.argsort(p[idx], kind="stable")]
    m = order.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out.tolist()


def paired_difference(
    a: Sequence[float], b: Sequence[float], metric: str, *, margin: float | None = None
) -> dict[str, Any]:
    """Every paired statistic of B - A for one metric (see the module docstring)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired values differ in length: {x.size} and {y.size}")
    both = np.isfinite(x) & np.isfinite(y)
    x, y = x[both], y[both]
    d = y - x
    higher = higher_is_better(metric)
    better = d > TIE_TOL if higher else d < -TIE_TOL
    worse = d < -TIE_TOL if higher else d > TIE_TOL
    lo, hi = bootstrap_ci(d)
    p, n_w = wilcoxon(d)
    out: dict[str, Any] = {
        "metric": metric,
        "n_pairs": int(d.size),
        "n_excluded": int(both.size - d.size),
        "mean_a": float(x.mean()) if d.size else math.nan,
        "mean_b": float(y.mean()) if d.size else math.nan,
        "mean_diff": float(d.mean()) if d.size else math.nan,
        "ci_low": lo,
        "ci_high": hi,
        "p_wilcoxon": p,
        "n_wilcoxon": n_w,
        "wins": int(np.count_nonzero(better)),
        "ties": int(d.size - np.count_nonzero(better) - np.count_nonzero(worse)),
        "losses": int(np.count_nonzero(worse)),
        "higher_is_better": higher,
        "margin": margin,
        "non_inferior": None,
    }
    if margin is not None and d.size:
        out["non_inferior"] = bool(lo > -margin) if higher else bool(hi < margin)
    return out
