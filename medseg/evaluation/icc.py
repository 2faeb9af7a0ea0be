"""Intraclass correlation coefficients from a two-way ANOVA (McGraw & Wong 1996).

``x`` is an ``n x k`` table: n subjects (cases) rated by k raters (here k = 2: the model's
and the reference volume). With the two-way ANOVA mean squares for rows (subjects, ``MSR``),
columns (raters, ``MSC``) and the residual (``MSE``):

* ``ICC(C,1)``, consistency, single rater (Shrout & Fleiss ICC(3,1); pingouin ``ICC3``):
  ``(MSR - MSE) / (MSR + (k - 1) MSE)``. A constant offset between raters does not lower it.
* ``ICC(A,1)``, absolute agreement, single rater (Shrout & Fleiss ICC(2,1); pingouin
  ``ICC2``): ``(MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)``. A constant offset
  lowers it: this is the one that asks whether the model gives the *same number*.

Confidence intervals (two-sided, ``level``): ICC(C,1) from the exact F distribution of
``MSR / MSE``; ICC(A,1) from McGraw & Wong's approximation with Satterthwaite's degrees of
freedom (the formulas pingouin and R's ``irr::icc`` use). Both assume normally distributed
subject effects and errors; the A form's interval is approximate (about 91.5% coverage for a
nominal 95% with two raters and 20 cases in ``tests/test_study_icc.py``'s simulation).

Lin's CCC is close to ICC(A,1) but not equal to it: CCC uses 1/n moments and no ANOVA model,
and the two differ by more than a factor n/(n-1) when the raters' variances differ
(``tests/test_study_icc.py`` shows a case: CCC 0.438, ICC(A,1) 0.471).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps


def anova_mean_squares(x: np.ndarray) -> tuple[float, float, float]:
    """(MSR, MSC, MSE) of the two-way ANOVA without replication of an ``n x k`` table."""
    n, k = x.shape
    grand = x.mean()
    rows = x.mean(axis=1)
    cols = x.mean(axis=0)
    msr = k * float(np.sum((rows - grand) ** 2)) / (n - 1)
    msc = n * float(np.sum((cols - grand) ** 2)) / (k - 1)
    resid = x - rows[:, None] - cols[None, :] + grand
    mse = float(np.sum(resid ** 2)) / ((n - 1) * (k - 1))
    return msr, msc, mse


def icc(table: Any, level: float = 0.95) -> dict[str, Any]:
    """ICC(A,1) and ICC(C,1) with their CIs for an ``n x k`` table (rows with NaN dropped).

    Returns ``{"n", "icc_a1", "icc_a1_ci_low", "icc_a1_ci_high", "icc_c1", "icc_c1_ci_low",
    "icc_c1_ci_high"}``; NaN below 3 subjects or without variance.
    """
    x = np.asarray(table, dtype=float)
    x = x[np.all(np.isfinite(x), axis=1)]
    n, k = x.shape if x.ndim == 2 else (0, 0)
    keys = ("icc_a1", "icc_a1_ci_low", "icc_a1_ci_high", "icc_c1", "icc_c1_ci_low",
            "icc_c1_ci_high")
    out: dict[str, Any] = {"n": int(n), **dict.fromkeys(keys, math.nan)}
    if n < 3 or k < 2:
        return out
    msr, msc, mse = anova_mean_squares(x)
    if msr + mse <= 0:
        return out
    alpha = 1.0 - level
    # consistency, ICC(C,1)
    c1 = (msr - mse) / (msr + (k - 1) * mse)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    out["icc_c1"] = c1
    if mse > 0:
        f = msr / mse
        fl = f / sps.f.ppf(1 - alpha / 2, df1, df2)
        fu = f * sps.f.ppf(1 - alpha / 2, df2, df1)
        out["icc_c1_ci_low"] = (fl - 1) / (fl + k - 1)
        out["icc_c1_ci_high"] = (fu - 1) / (fu + k - 1)
    # absolute agreement, ICC(A,1)
    a1 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    out["icc_a1"] = a1
    if mse > 0 and a1 < 1:
        a = k * a1 / (n * (1 - a1))
        b = 1 + k * a1 * (n - 1) / (n * (1 - a1))
        v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / df2)
        f_low = sps.f.ppf(1 - alpha / 2, n - 1, v)
        f_high = sps.f.ppf(1 - alpha / 2, v, n - 1)
        den = k * msc + (k * n - k - n) * mse
        out["icc_a1_ci_low"] = n * (msr - f_low * mse) / (f_low * den + n * msr)
        out["icc_a1_ci_high"] = n * (f_high * msr - mse) / (den + n * f_high * msr)
    return {key: (float(v) if isinstance(v, (float, np.floating)) else v)
            for key, v in out.items()}
