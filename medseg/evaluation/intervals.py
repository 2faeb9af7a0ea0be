"""Confidence intervals of a mean over cases, and when a study may state one at all.

:class:`StatsOptions` holds every choice that changes an interval or a decision, so that one
object travels from the command line to every summary, comparison and criterion, and is
written into every output (:meth:`StatsOptions.record`):

* ``min_n`` (default :data:`DEFAULT_MIN_N` = 10): below this many finite values no interval
  is reported (the bounds are None and ``ci_note`` says ``n < 10``) and nothing that needs an
  interval is decided (a ``ci_low`` criterion is NOT EVALUABLE, non-inferiority is not
  decidable). With n = 1 the percentile bootstrap gives [x, x] and with n = 2 [min, max]:
  intervals that look like evidence and are none.
* ``ci_method``:

  - ``bca`` (default): the bias-corrected and accelerated bootstrap (Efron 1987; Efron &
    Tibshirani 1993, ch. 14) with the small-sample expansion of Hesterberg (2015, The
    American Statistician 69(4), "expanded percentile"): the normal quantile ``z_alpha`` of
    the BCa formula is replaced by ``sqrt(n / (n - 1)) t_{n-1, alpha}``. The plain bootstrap
    distribution of a mean has variance ``s^2 (n - 1) / n^2`` and normal tails, so percentile
    and plain BCa bounds are too narrow by both factors at n = 10-30; the expansion restores
    the t-interval's width for symmetric data while BCa's bias correction ``z0`` and
    acceleration ``a`` (closed form for the mean: ``a = sum(d^3) / (6 sum(d^2)^1.5)``,
    ``d = x - mean``, the jackknife value) follow skewed data (failure cases). Coverage is
    measured by ``bench/ci_coverage.py`` (figures in ``docs/evaluation.md``).
  - ``percentile``: the plain percentile bootstrap (medseg's method before issue 23; too
    narrow below ~30 cases).
  - ``t``: ``mean +- t_{n-1} SD / sqrt(n)`` (no resampling; exact for normal data).
* ``ci_level`` (0.95) and ``one_sided``: with ``one_sided`` each bound is a one-sided bound at
  ``ci_level`` (``ci_low`` is the 95% lower confidence bound; the pair is then the two-sided
  90% interval); without, each bound has ``(1 - ci_level) / 2`` in its tail.
* ``resamples`` (default 10,000) and ``seed`` (0): the Monte-Carlo error of a bootstrap bound
  is estimated from the order statistics around it (distribution-free: the bound is the j-th
  of B ordered resamples; ``j +- 1.96 sqrt(B p (1 - p))`` brackets it with 95% probability, and
  the spread of those two order statistics / 3.92 is its standard error), reported as
  ``ci_low_mc_se`` / ``ci_high_mc_se``; a decision closer to its threshold than 2 MC SE is
  flagged (:func:`near_threshold`), since another seed could flip it.
* ``clusters``: ``{case: cluster}`` (``--cluster patient_id``): resample clusters (patients)
  instead of cases, keeping each patient's cases together (the cluster bootstrap; the
  estimate is the mean over all cases of the drawn clusters). The ``t`` method then uses the
  cluster means' SD with ``n_clusters - 1`` degrees of freedom (cluster-robust SE of a mean).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import stats as sps

_NORMAL = NormalDist()
DEFAULT_MIN_N = 10
DEFAULT_RESAMPLES = 10_000
CI_METHODS = ("bca", "percentile", "t")
#: a bound within this many Monte-Carlo SE of a threshold is flagged
MC_FLAG_SE = 2.0


@dataclass(frozen=True)
class StatsOptions:
    """How intervals are computed and when they may be stated (see the module docstring)."""

    min_n: int = DEFAULT_MIN_N
    ci_method: str = "bca"
    ci_level: float = 0.95
    one_sided: bool = False
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    clusters: Mapping[str, str] | None = None
    cluster_column: str = ""

    def __post_init__(self) -> None:
        if self.ci_method not in CI_METHODS:
            raise ValueError(f"ci_method {self.ci_method!r} is not one of {', '.join(CI_METHODS)}")
        if not 0.5 < self.ci_level < 1.0:
            raise ValueError(f"ci_level {self.ci_level} must lie between 0.5 and 1")
        if self.min_n < 2:
            raise ValueError("min_n must be at least 2 (an interval needs two cases)")
        if self.resamples < 200:
            raise ValueError("resamples must be at least 200")

    @property
    def tail(self) -> float:
        """Probability in each tail beyond a bound."""
        return 1.0 - self.ci_level if self.one_sided else (1.0 - self.ci_level) / 2.0

    def replace(self, **changes: Any) -> StatsOptions:
        return dataclasses.replace(self, **changes)

    def record(self) -> dict[str, Any]:
        """The settings as written into every output."""
        return {"min_n": self.min_n, "ci_method": self.ci_method, "ci_level": self.ci_level,
                "one_sided": self.one_sided,
                "resamples": None if self.ci_method == "t" else self.resamples,
                "seed": None if self.ci_method == "t" else self.seed,
                "cluster": self.cluster_column or None}

    def describe(self) -> str:
        """One phrase naming the interval, for notes and the methods paragraph."""
        side = "one-sided " if self.one_sided else ""
        level = f"{100 * self.ci_level:g}% {side}"
        unit = f"clusters ({self.cluster_column})" if self.clusters is not None else "cases"
        if self.ci_method == "t":
            return f"{level}t-interval of the mean (SD / sqrt(n) of {unit})"
        name = ("BCa bootstrap with Hesterberg's small-sample expansion"
                if self.ci_method == "bca" else "percentile bootstrap")
        return (f"{level}{name} ({self.resamples} resamples of {unit}, seed {self.seed}; "
                f"no interval below n = {self.min_n})")


DEFAULT_STATS = StatsOptions()


def _empty(note: str) -> dict[str, Any]:
    return {"ci_low": None, "ci_high": None, "ci_low_mc_se": None, "ci_high_mc_se": None,
            "ci_note": note}


def mean_ci(
    values: Sequence[float] | np.ndarray,
    options: StatsOptions | None = None,
    *,
    cases: Sequence[str] | None = None,
    boot: np.ndarray | None = None,
) -> dict[str, Any]:
    """Interval of the mean of the finite ``values`` (see the module docstring).

    Returns ``ci_low``, ``ci_high`` (None below ``min_n``), their Monte-Carlo standard errors
    (None for ``t``) and ``ci_note`` (``""``, or ``"n < 10"``). ``cases`` names each value
    (needed with ``clusters``). ``boot``: the resampled means of the finite values when the
    caller computed them already (:func:`bootstrap_matrix`, several metrics at once).
    """
    opts = options or DEFAULT_STATS
    x = np.asarray(values, dtype=float)
    keep = np.isfinite(x)
    groups = None
    if opts.clusters is not None:
        if cases is None:
            raise ValueError("a cluster bootstrap needs the case of every value")
        names = [opts.clusters.get(c, c) for c, k in zip(cases, keep, strict=True) if k]
        groups = np.unique(np.asarray(names, dtype=object), return_inverse=True)[1]
    x = x[keep]
    if x.size < opts.min_n:
        return _empty(f"n < {opts.min_n}")
    if groups is not None and groups.max() + 1 < 2:
        return _empty("one cluster")
    if opts.ci_method == "t":
        lo, hi = t_interval(x, opts, groups)
        return {"ci_low": lo, "ci_high": hi, "ci_low_mc_se": None, "ci_high_mc_se": None,
                "ci_note": ""}
    means = bootstrap_means(x, opts, groups) if boot is None or groups is not None else boot
    est = float(x.mean())
    probs = _bca_probs(x, means, est, opts, groups) if opts.ci_method == "bca" \
        else (opts.tail, 1.0 - opts.tail)
    out = {"ci_note": ""}
    for key, p in zip(("ci_low", "ci_high"), probs, strict=True):
        bound, se = _quantile_with_mc_se(means, p)
        out[key], out[f"{key}_mc_se"] = bound, se
    return out


def bootstrap_means(x: np.ndarray, opts: StatsOptions,
                    groups: np.ndarray | None = None) -> np.ndarray:
    """``resamples`` bootstrap means of ``x`` (cases, or whole clusters, with replacement)."""
    if groups is None:
        if x.size * opts.resamples <= CACHE_ELEMENTS:
            return _weights(x.size, opts.resamples, opts.seed) @ x / x.size
        rng = np.random.default_rng(opts.seed)
        idx = rng.integers(0, x.size, size=(opts.resamples, x.size))
        return x[idx].mean(axis=1)
    rng = np.random.default_rng(opts.seed)
    k = int(groups.max()) + 1
    sums = np.bincount(groups, weights=x, minlength=k)
    counts = np.bincount(groups, minlength=k).astype(float)
    draw = rng.integers(0, k, size=(opts.resamples, k))
    return sums[draw].sum(axis=1) / counts[draw].sum(axis=1)


#: resample weight matrices up to this many entries are cached (80 MB each)
CACHE_ELEMENTS = 10_000_000


@functools.lru_cache(maxsize=2)
def _weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of n cases is drawn in each resample (the same draws as indexing
    ``x[rng.integers(0, n, (resamples, n))]``), so that every metric of a cohort with n values
    reuses one draw: ``weights @ x / n`` are the resampled means."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    flat = (idx + (np.arange(resamples) * n)[:, None]).ravel()
    w = np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)
    w.flags.writeable = False
    return w


def bootstrap_matrix(columns: np.ndarray, opts: StatsOptions) -> np.ndarray | None:
    """Resampled means of every column of an ``n x m`` table of finite values at once (the
    same draws as :func:`bootstrap_means` of each column); None when not cached-size."""
    n = columns.shape[0]
    if n * opts.resamples > CACHE_ELEMENTS or n < 1:
        return None
    return _weights(n, opts.resamples, opts.seed) @ columns / n


def t_interval(x: np.ndarray, opts: StatsOptions,
               groups: np.ndarray | None = None) -> tuple[float, float]:
    """``mean +- t SE``; with clusters the SE of the ratio mean from cluster totals."""
    mean = float(x.mean())
    if groups is None:
        n, se = x.size, float(x.std(ddof=1)) / math.sqrt(x.size)
    else:
        k = int(groups.max()) + 1
        sums = np.bincount(groups, weights=x, minlength=k)
        counts = np.bincount(groups, minlength=k).astype(float)
        resid = sums - mean * counts  # linearised ratio estimator
        n = k
        se = float(math.sqrt(k / (k - 1) * np.sum(resid ** 2)) / counts.sum())
    q = float(sps.t.ppf(1.0 - opts.tail, n - 1))
    return mean - q * se, mean + q * se


def _bca_probs(x: np.ndarray, means: np.ndarray, est: float, opts: StatsOptions,
               groups: np.ndarray | None) -> tuple[float, float]:
    """The expanded BCa quantile levels of the lower and upper bound."""
    if np.all(means == means[0]):
        return opts.tail, 1.0 - opts.tail
    below = (np.count_nonzero(means < est) + 0.5 * np.count_nonzero(means == est)) / means.size
    below = min(max(below, 0.5 / means.size), 1.0 - 0.5 / means.size)
    z0 = _NORMAL.inv_cdf(below)
    if groups is None:
        d = x - est
    else:  # jackknife over clusters, linearised: cluster residual totals
        k = int(groups.max()) + 1
        d = np.bincount(groups, weights=x - est, minlength=k)
    s2 = float(np.sum(d ** 2))
    a = float(np.sum(d ** 3)) / (6.0 * s2 ** 1.5) if s2 > 0 else 0.0
    n = x.size if groups is None else int(groups.max()) + 1
    out = []
    for tail in (opts.tail, 1.0 - opts.tail):
        w = z0 + _expanded_z(n, tail)
        out.append(_NORMAL.cdf(z0 + w / (1.0 - a * w)))
    return out[0], out[1]


@functools.lru_cache(maxsize=256)
def _expanded_z(n: int, tail: float) -> float:
    """Hesterberg's expanded quantile ``sqrt(n / (n - 1)) t_{n-1}(tail)``."""
    return math.sqrt(n / (n - 1)) * float(sps.t.ppf(tail, n - 1))


def _quantile_with_mc_se(means: np.ndarray, p: float) -> tuple[float, float]:
    """The ``p``-quantile of the resampled means and its Monte-Carlo standard error."""
    b = means.size
    ordered = np.sort(means)
    bound = float(np.quantile(ordered, p))
    h = 1.96 * math.sqrt(b * p * (1.0 - p))
    j = p * (b - 1)
    lo = ordered[int(max(0, math.floor(j - h)))]
    hi = ordered[int(min(b - 1, math.ceil(j + h)))]
    return bound, float(hi - lo) / 3.92


def near_threshold(value: float | None, mc_se: float | None, threshold: float) -> bool:
    """True when a bootstrap bound is within :data:`MC_FLAG_SE` Monte-Carlo SE of a threshold."""
    if value is None or mc_se is None or not math.isfinite(value):
        return False
    return abs(value - threshold) <= MC_FLAG_SE * mc_se
