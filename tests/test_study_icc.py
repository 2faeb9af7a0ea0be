"""ICC(A,1) and ICC(C,1) with CIs, the CIs of Lin's CCC and of the Bland-Altman limits of
agreement: against published values, an independent ANOVA, pingouin's formulas written out
here, and coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from medseg.evaluation.agreement import bland_altman, ccc_ci, lins_ccc
from medseg.evaluation.icc import anova_mean_squares, icc

#: Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6],
                          [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float)


def _anova_by_regression(x):
    """Mean squares from least-squares fits of the long table (an independent route)."""
    n, k = x.shape
    y = x.ravel()
    subj = np.repeat(np.arange(n), k)
    rater = np.tile(np.arange(k), n)
    ones = np.ones((y.size, 1))
    s_dummies = (subj[:, None] == np.arange(1, n)[None, :]).astype(float)
    r_dummies = (rater[:, None] == np.arange(1, k)[None, :]).astype(float)

    def rss(design):
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        return float(np.sum((y - design @ beta) ** 2))

    full = rss(np.hstack([ones, s_dummies, r_dummies]))
    no_subj = rss(np.hstack([ones, r_dummies]))
    no_rater = rss(np.hstack([ones, s_dummies]))
    mse = full / ((n - 1) * (k - 1))
    return (no_subj - full) / (n - 1), (no_rater - full) / (k - 1), mse


def _pingouin_cis(x, alpha=0.05):
    """pingouin.intraclass_corr's CI formulas for ICC2 and ICC3, as pingouin writes them
    (its v for ICC2 is an algebraically different expression from medseg's)."""
    n, k = x.shape
    msb, msj, mse = _anova_by_regression(x)
    icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
    icc3 = (msb - mse) / (msb + (k - 1) * mse)
    f1, fj = msb / mse, msj / mse
    f3l = f1 / sps.f.ppf(1 - alpha / 2, n - 1, (n - 1) * (k - 1))
    f3u = f1 * sps.f.ppf(1 - alpha / 2, (n - 1) * (k - 1), n - 1)
    vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    vd = (n - 1) * k ** 2 * icc2 ** 2 * fj ** 2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    v = vn / vd
    f2l = sps.f.ppf(1 - alpha / 2, n - 1, v)
    f2u = sps.f.ppf(1 - alpha / 2, v, n - 1)
    l2 = n * (msb - f2l * mse) / (f2l * (k * msj + (k * n - k - n) * mse) + n * msb)
    u2 = n * (f2u * msb - mse) / (k * msj + (k * n - k - n) * mse + n * f2u * msb)
    return {"icc_a1": icc2, "icc_a1_ci_low": l2, "icc_a1_ci_high": u2, "icc_c1": icc3,
            "icc_c1_ci_low": (f3l - 1) / (f3l + k - 1), "icc_c1_ci_high": (f3u - 1) / (f3u + k - 1)}


def test_shrout_fleiss_published_values():
    out = icc(SHROUT_FLEISS)
    assert round(out["icc_a1"], 2) == 0.29  # ICC(2,1) in the paper
    assert round(out["icc_c1"], 2) == 0.71  # ICC(3,1)
    assert anova_mean_squares(SHROUT_FLEISS) == pytest.approx(
        _anova_by_regression(SHROUT_FLEISS))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_icc_agrees_with_pingouins_formulas_to_1e6(seed):
    rng = np.random.default_rng(seed)
    subj = rng.normal(100, 30, 25)
    x = np.column_stack([subj + rng.normal(0, 10, 25), 1.1 * subj + 5 + rng.normal(0, 10, 25)])
    ours = icc(x)
    ref = _pingouin_cis(x)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key
    assert icc(SHROUT_FLEISS)["icc_a1_ci_low"] == pytest.approx(
        _pingouin_cis(SHROUT_FLEISS)["icc_a1_ci_low"], abs=1e-6)


def test_icc_cis_cover_by_simulation():
    """1000 tables of 20 cases x 2 raters with random rater effects: the exact C interval
    covers the true ICC close to 95% of the time; McGraw & Wong's approximate A interval
    somewhat less with only two raters (91.5% here; documented)."""
    rng = np.random.default_rng(4)
    s2, r2, e2 = 4.0, 1.0, 1.0
    truth_a, truth_c = s2 / (s2 + r2 + e2), s2 / (s2 + e2)
    cover_a = cover_c = 0
    for _ in range(1000):
        x = (rng.normal(0, math.sqrt(s2), (20, 1)) + rng.normal(0, math.sqrt(r2), (1, 2))
             + rng.normal(0, math.sqrt(e2), (20, 2)))
        out = icc(x)
        cover_a += out["icc_a1_ci_low"] <= truth_a <= out["icc_a1_ci_high"]
        cover_c += out["icc_c1_ci_low"] <= truth_c <= out["icc_c1_ci_high"]
    assert 0.93 <= cover_c / 1000 <= 0.97
    assert 0.90 <= cover_a / 1000 <= 0.98


def test_ccc_is_not_icc_a1_up_to_n_over_n_minus_1():
    """The old docs said CCC equals ICC(A,1) up to n/(n-1); the reviewer found 0.2518 vs
    0.2582. Here too neither CCC (1/n moments, 0.438), nor its n-1 version (0.451), nor CCC
    times n/(n-1) (0.501) equals ICC(A,1) (0.471)."""
    x = np.array([2.0, 4.0, 3.0, 8.0, 5.0, 6.0, 1.0, 9.0])
    y = 0.3 * x + np.array([0.0, -0.5, 3.0, 1.0, 4.5, 0.0, 1.0, 3.0])
    n = x.size
    ccc = lins_ccc(x, y)
    sxy = np.cov(x, y)[0, 1]
    ccc_unbiased = 2 * sxy / (x.var(ddof=1) + y.var(ddof=1) + (x.mean() - y.mean()) ** 2)
    a1 = icc(np.column_stack([x, y]))["icc_a1"]
    assert (ccc, ccc_unbiased, a1) == pytest.approx((0.4384, 0.4515, 0.4715), abs=1e-4)
    assert abs(a1 - ccc) > 0.015 and abs(a1 - ccc_unbiased) > 0.015
    assert abs(a1 - ccc * n / (n - 1)) > 0.015


def test_ccc_ci_by_simulation_and_by_hand():
    rng = np.random.default_rng(8)
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    truth = 2 * 0.8 / (1 + 1 + 0.2 ** 2)  # means 0 and 0.2
    cover = 0
    for _ in range(1000):
        xy = rng.multivariate_normal([0.0, 0.2], cov, 40)
        lo, hi = ccc_ci(xy[:, 0], xy[:, 1])
        cover += lo <= truth <= hi
    assert 0.93 <= cover / 1000 <= 0.97
    # by hand for one sample: Lin's variance of atanh(CCC)
    x, y = rng.multivariate_normal([0.0, 0.2], cov, 30).T
    rc = lins_ccc(x, y)
    r = np.corrcoef(x, y)[0, 1]
    u = (x.mean() - y.mean()) / math.sqrt(x.std() * y.std())
    var = ((1 - r * r) * rc * rc / ((1 - rc * rc) * r * r)
           + 2 * rc ** 3 * (1 - rc) * u * u / (r * (1 - rc * rc) ** 2)
           - rc ** 4 * u ** 4 / (2 * r * r * (1 - rc * rc) ** 2)) / (30 - 2)
    half = 1.959963984540054 * math.sqrt(var)
    assert ccc_ci(x, y) == pytest.approx((math.tanh(math.atanh(rc) - half),
                                          math.tanh(math.atanh(rc) + half)))


def test_loa_ci_by_simulation():
    """The upper limit of agreement's CI covers the population limit mu + 1.96 sigma."""
    rng = np.random.default_rng(12)
    truth = 1.0 + 1.96 * 2.0
    cover = 0
    for _ in range(1000):
        ref = rng.uniform(50, 150, 40)
        pred = ref + rng.normal(1.0, 2.0, 40)
        ml = bland_altman(pred, ref)["ml"]
        cover += ml["loa_high_ci_low"] <= truth <= ml["loa_high_ci_high"]
    assert 0.93 <= cover / 1000 <= 0.975


def test_agreement_section_holds_icc_and_cis():
    ref = np.array([10.0, 20.0, 30.0, 40.0, 55.0, 61.0])
    pred = ref * 1.1 + np.array([1.0, -1.0, 0.5, 2.0, -0.5, 0.0])
    ba = bland_altman(pred, ref)
    assert ba["icc_c1"] > ba["icc_a1"]  # a 10% scale bias lowers absolute agreement only
    assert ba["icc_a1"] == pytest.approx(icc(np.column_stack([pred, ref]))["icc_a1"])
    assert ba["ccc_ci_low"] < ba["ccc"] < ba["ccc_ci_high"]
    assert ba["ml"]["loa_low_ci_low"] < ba["ml"]["loa_low"] < ba["ml"]["loa_low_ci_high"]


@pytest.mark.parametrize("seed", [0, 5])
def test_icc_agrees_with_the_pingouin_package_to_1e6(seed):
    """The acceptance check against pingouin itself (a dev dependency): its ICC(A,1) and
    ICC(C,1) to 1e-6; pingouin rounds its CIs to 2 decimals."""
    pg = pytest.importorskip("pingouin")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    subj = rng.normal(100, 30, 25)
    x = np.column_stack([subj + rng.normal(0, 10, 25), 1.1 * subj + 5 + rng.normal(0, 10, 25)])
    long = pd.DataFrame({"case": np.repeat(np.arange(25), 2), "rater": np.tile([0, 1], 25),
                         "volume": x.ravel()})
    table = pg.intraclass_corr(data=long, targets="case", raters="rater",
                               ratings="volume").set_index("Type")
    ours = icc(x)
    assert ours["icc_a1"] == pytest.approx(table.loc["ICC(A,1)", "ICC"], abs=1e-6)
    assert ours["icc_c1"] == pytest.approx(table.loc["ICC(C,1)", "ICC"], abs=1e-6)
    for ours_key, row in (("icc_a1", "ICC(A,1)"), ("icc_c1", "ICC(C,1)")):
        low, high = table.loc[row, "CI95"]
        assert round(ours[f"{ours_key}_ci_low"], 2) == pytest.approx(low, abs=1e-9)
        assert round(ours[f"{ours_key}_ci_high"], 2) == pytest.approx(high, abs=1e-9)
