"""Volume agreement between prediction and reference, per class.

Bland-Altman (Bland & Altman, Lancet 1986): with per-case volumes ``p`` (prediction) and
``r`` (reference) in mL, the differences ``d = p - r`` give the **bias** ``mean(d)`` and the
**95% limits of agreement** ``bias +- 1.96 SD(d)`` (SD with ddof 1). The same in percent uses
``100 (p - r) / ((p + r) / 2)``, the difference relative to the mean of both, which is what a
Bland-Altman plot in % shows. Assumptions: the differences are roughly normal and do not
depend on the size of the organ (look at the plot: a funnel or a slope means the % form is
the one to read). The 95% CI of the bias is ``bias +- t(0.975, n-1) SD / sqrt(n)``; the 95%
CI of each limit of agreement is ``LoA +- t(0.975, n-1) SD sqrt(1/n + 1.96^2 / (2 (n-1)))``
(Bland & Altman 1999, Stat Methods Med Res 8:135, the large-sample SE of ``mean + 1.96 SD``;
approximate, slightly narrow below ~20 cases). Cases where both volumes are 0 say nothing about
agreement and are left out; errors are left out.

Concordance: **Lin's concordance correlation coefficient** (Lin, Biometrics 1989),
``CCC = 2 s_pr / (s_p^2 + s_r^2 + (mean p - mean r)^2)`` with 1/n moments. Chosen over an
ICC because the question is whether two methods give the *same number* on the same scale:
CCC is 1 only on the identity line and is lowered by bias (a location shift) and by a scale
difference as well as by scatter, with no ANOVA model to pick. It is close to the absolute
agreement ICC(A,1) but not equal to it, not even up to a factor n/(n-1) (the two weigh the
rater variance differently); both ICC(A,1) and the consistency ICC(C,1) are reported beside it
(:mod:`medseg.evaluation.icc`, on the mL volumes). Pearson's r would reward a model that is
consistently 20% too large. The 95% CI of the CCC uses Lin's z-transform (Lin 1989, with
the 2000 correction: ``atanh(CCC) +- 1.96 SE``, the delta-method SE of the transformed
coefficient; R ``epiR::epi.ccc``), needs at least 3 cases and assumes bivariate normality.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medseg.evaluation.icc import icc


def bland_altman(pred: Sequence[float], ref: Sequence[float]) -> dict[str, Any]:
    """Bias, SD, 95% limits of agreement and bias CI, in mL and in % of the mean volume."""
    p = np.asarray(pred, dtype=float)
    r = np.asarray(ref, dtype=float)
    keep = np.isfinite(p) & np.isfinite(r) & ((p != 0) | (r != 0))
    p, r = p[keep], r[keep]
    n = int(p.size)
    out: dict[str, Any] = {"n": n}
    for unit, d in (("ml", p - r), ("pct", 200.0 * (p - r) / (p + r) if n else p)):
        bias = float(d.mean()) if n else math.nan
        sd = float(d.std(ddof=1)) if n > 1 else math.nan
        half = _t975(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
        loa_half = (_t975(n - 1) * sd * math.sqrt(1.0 / n + 1.96 ** 2 / (2.0 * (n - 1)))
                    if n > 1 else math.nan)
        lo, hi = bias - 1.96 * sd, bias + 1.96 * sd
        out[unit] = {"bias": bias, "sd": sd, "loa_low": lo,
                     "loa_high": hi, "bias_ci_low": bias - half,
                     "bias_ci_high": bias + half,
                     "loa_low_ci_low": lo - loa_half, "loa_low_ci_high": lo + loa_half,
                     "loa_high_ci_low": hi - loa_half, "loa_high_ci_high": hi + loa_half}
    out["ccc"] = lins_ccc(p, r)
    out["ccc_ci_low"], out["ccc_ci_high"] = ccc_ci(p, r)
    out.update(icc(np.column_stack([p, r]) if n else np.zeros((0, 2))))
    return out


def ccc_ci(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """CI of Lin's CCC by the z-transform (Lin 1989 / 2000); NaN below 3 pairs."""
    from scipy.stats import norm

    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    n = a.size
    rc = lins_ccc(a, b)
    if n < 3 or not math.isfinite(rc) or abs(rc) >= 1:
        return math.nan, math.nan
    sa, sb = float(a.std()), float(b.std())
    if sa == 0 or sb == 0:
        return math.nan, math.nan
    r = float(np.mean((a - a.mean()) * (b - b.mean()))) / (sa * sb)
    if r == 0:
        return math.nan, math.nan
    u = (a.mean() - b.mean()) / math.sqrt(sa * sb)
    var = ((1 - r ** 2) * rc ** 2 / ((1 - rc ** 2) * r ** 2)
           + 2 * rc ** 3 * (1 - rc) * u ** 2 / (r * (1 - rc ** 2) ** 2)
           - rc ** 4 * u ** 4 / (2 * r ** 2 * (1 - rc ** 2) ** 2)) / (n - 2)
    if not var > 0:
        return math.nan, math.nan
    z = math.atanh(rc)
    half = float(norm.ppf(0.5 + level / 2)) * math.sqrt(var)
    return math.tanh(z - half), math.tanh(z + half)


def _t975(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def lins_ccc(x: Sequence[float], y: Sequence[float]) -> float:
    """Lin's concordance correlation coefficient (1/n moments); NaN below 2 pairs."""
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if a.size < 2:
        return math.nan
    sab = float(np.mean((a - a.mean()) * (b - b.mean())))
    den = float(a.var() + b.var() + (a.mean() - b.mean()) ** 2)
    return 2.0 * sab / den if den > 0 else math.nan


def volume_agreement(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """:func:`bland_altman` per class from evaluation rows, with the points for the plot."""
    out: dict[str, Any] = {}
    classes = list(dict.fromkeys(r["class"] for r in rows
                                 if r.get("label") is not None and r.get("status") != "error"))
    for name in classes:
        class_rows = [r for r in rows if r["class"] == name and r.get("status") != "error"]
        p = [float(r.get("pred_volume_ml", math.nan)) for r in class_rows]
        v = [float(r.get("ref_volume_ml", math.nan)) for r in class_rows]
        stats = bland_altman(p, v)
        stats["points"] = [
            {"case": r["case"], "pred_ml": a, "ref_ml": b}
            for r, a, b in zip(class_rows, p, v, strict=True)
            if math.isfinite(a) and math.isfinite(b) and (a or b)
        ]
        out[name] = stats
    return out
