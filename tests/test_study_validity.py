"""Issue 23: the seven findings of the statistician's review, each rebuilt from its
reproduction, showing the new behaviour.

1. no decision from one or two cases (CSV, JSON, stdout, HTML and exit status agree);
2. a missed structure no longer drops out of HD95/ASSD (worst-case distance, n_imputed);
3. honest intervals: coverage by simulation, BCa against scipy, seed and Monte-Carlo error;
4. criteria compare value and threshold at the same precision;
5. Wilcoxon near-ties within the tolerance are ties;
6. the two documentation errors;
7. STAPLE's per-reader sensitivity and specificity are reported.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from medseg.cli import main
from medseg.evaluation.intervals import StatsOptions, mean_ci
from medseg.evaluation.pairs import image_diagonal_mm
from medseg.evaluation.study.criteria import Criterion, judge
from medseg.evaluation.study.paired import paired_difference, wilcoxon_test
from medseg.evaluation.study.readers import staple_with_performance
from medseg.volume import LabelMap
from tests.study_cohorts import AFFINE, SHAPE, SPACING, cube, shifted_cohort, write

DOCS = Path(__file__).resolve().parents[1] / "docs" / "evaluation.md"


def _crit(tmp_path, items, name="criteria.json"):
    path = tmp_path / name
    path.write_text(json.dumps(items))
    return path


def _csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


# ---- 1. decisions from one or two cases ------------------------------------------------------
@pytest.mark.parametrize("n_cases", [1, 2])
def test_one_or_two_cases_decide_nothing_anywhere(tmp_path, capsys, n_cases):
    """Before: the CI was [x, x] (n=1) or [min, max] (n=2), ci_low >= 0.8 PASSed and compare
    declared non-inferiority. Now: no CI, NOT EVALUABLE, exit 3, in every output."""
    sides = [10, 12][:n_cases]
    folders = shifted_cohort(tmp_path, sides, {"A": [1] * n_cases, "B": [1] * n_cases})
    crit = _crit(tmp_path, [{"id": "LOW", "class": "organ", "metric": "dice",
                             "statistic": "ci_low", "op": ">=", "threshold": 0.8}])
    out = tmp_path / "eval"
    code = main(["evaluate", "--pred", str(folders["A"]), "--ref", str(folders["ref"]),
                 "--labels", "organ=1", "-o", str(out), "--criteria", str(crit),
                 "--fail-on-criteria", "--workers", "1"])
    stdout = capsys.readouterr().out
    assert code == 3
    doc = json.loads((out / "criteria.json").read_text())
    (c,) = doc["criteria"]
    assert c["result"] == "NOT EVALUABLE" and c["value"] is None and c["n"] == n_cases
    assert doc["passed"] is False and doc["verdict"] == "NOT EVALUABLE"
    assert doc["intervals"]["min_n"] == 10
    assert "NOT EVALUABLE LOW" in stdout and "criteria: NOT EVALUABLE" in stdout
    assert "95% CI: n < 10" in stdout
    dice = next(r for r in _csv(out / "summary.csv") if r["metric"] == "dice")
    assert (dice["ci_low"], dice["ci_high"], dice["ci_note"]) == ("", "", "n < 10")
    summary = json.loads((out / "summary.json").read_text())
    stats = summary["classes"]["organ"]["metrics"]["dice"]
    assert stats["ci_low"] is None and stats["ci_note"] == "n < 10"
    assert summary["settings"]["intervals"]["min_n"] == 10
    html = (out / "report.html").read_text()
    assert "class='na'>NOT EVALUABLE" in html and "n &lt; 10" in html
    # compare: no non-inferiority verdict either
    cmp_out = tmp_path / "cmp"
    assert main(["compare", "--ref", str(folders["ref"]), "--pred", str(folders["A"]),
                 "--pred", str(folders["B"]), "-o", str(cmp_out), "--margin", "0.05",
                 "--metrics", "dice", "--workers", "1"]) == 0
    stdout = capsys.readouterr().out
    (row,) = _csv(cmp_out / "comparison.csv")
    assert row["non_inferior"] == "" and row["non_inferior_note"] == "not decidable (n < 10)"
    assert row["ci_low"] == "" and row["ci_note"] == "n < 10"
    assert "non-inferior: not decidable (n < 10)" in stdout
    (jrow,) = json.loads((cmp_out / "comparison.json").read_text())["comparisons"]
    assert jrow["non_inferior"] is None and jrow["ci_low"] is None
    assert "not decidable (n &lt; 10)" in (cmp_out / "comparison.html").read_text()


def test_min_n_is_a_study_setting_and_unlocks_decisions():
    x = np.linspace(0.85, 0.95, 6)
    assert mean_ci(x)["ci_low"] is None
    ci = mean_ci(x, StatsOptions(min_n=6))
    assert ci["ci_low"] < x.mean() < ci["ci_high"] and ci["ci_note"] == ""
    rows = [{"case": f"c{i}", "class": "organ", "label": 1, "status": "ok", "dice": v}
            for i, v in enumerate(x)]
    c = Criterion(id="C", class_name="organ", label=1, metric="dice", statistic="mean",
                  op=">=", threshold=0.8, min_n=8)
    assert judge([c], rows)["criteria"][0]["result"] == "NOT EVALUABLE"  # its own min_n
    assert judge([c.__class__(**{**c.__dict__, "min_n": 6})], rows)["passed"] is True


# ---- 2. a missed structure ----------------------------------------------------------------
def test_missed_organ_gets_the_worst_distance_and_loses(tmp_path, capsys):
    """Before: B, empty on 2 of 10 cases, won HD95 8/0/0 against A (found the organ every
    time, 2 mm off) and passed 'mean hd95 <= 1' while A failed."""
    sides = [8, 10, 12, 8, 10, 12, 8, 10, 12, 10]
    folders = shifted_cohort(tmp_path, sides, {"A": [2] * 10, "B": [0] * 10})
    for case in ("case03", "case07"):  # B misses the organ here
        write(folders["B"], case, np.zeros(SHAPE, np.uint8))
    crit = _crit(tmp_path, [{"id": "HD", "class": "organ", "metric": "hd95",
                             "statistic": "mean", "op": "<=", "threshold": 1}])
    diag = math.sqrt(sum((n * s) ** 2 for n, s in zip(SHAPE, SPACING, strict=True)))
    assert image_diagonal_mm(SHAPE, SPACING) == pytest.approx(diag)  # sqrt(24^2+20^2+32^2)
    results = {}
    for policy in ("worst", "exclude"):
        for model in ("A", "B"):
            out = tmp_path / f"{model}-{policy}"
            main(["evaluate", "--pred", str(folders[model]), "--ref", str(folders["ref"]),
                  "--labels", "organ=1", "-o", str(out), "--criteria", str(crit),
                  "--missing-distance", policy, "--workers", "1"])
            results[model, policy] = json.loads((out / "criteria.json").read_text())
    capsys.readouterr()
    b_worst = results["B", "worst"]["criteria"][0]
    assert b_worst["result"] == "FAIL" and b_worst["n"] == 10 and b_worst["n_imputed"] == 2
    assert b_worst["value"] == pytest.approx(2 * diag / 10)
    assert results["A", "worst"]["criteria"][0]["result"] == "FAIL"  # 2 mm > 1 mm
    b_old = results["B", "exclude"]["criteria"][0]
    assert b_old["result"] == "PASS" and (b_old["n"], b_old["n_excluded"]) == (8, 2)
    rows = _csv(tmp_path / "B-worst" / "per_case.csv")
    missed = next(r for r in rows if r["case"] == "case03" and r["class"] == "organ")
    assert missed["status"] == "pred_empty"
    assert float(missed["hd95"]) == float(missed["assd"]) == pytest.approx(diag)
    assert float(missed["missing_distance_mm"]) == pytest.approx(diag)
    hd = next(r for r in _csv(tmp_path / "B-worst" / "summary.csv") if r["metric"] == "hd95")
    assert (hd["n"], hd["n_excluded"], hd["n_imputed"]) == ("10", "0", "2")
    summary = json.loads((tmp_path / "B-worst" / "summary.json").read_text())
    assert summary["settings"]["missing_distance"] == "worst"
    # compare: B no longer wins 8/0/0 on HD95, and the count stands beside the decision
    out = tmp_path / "cmp"
    main(["compare", "--ref", str(folders["ref"]), "--pred", str(folders["A"]), "--pred",
          str(folders["B"]), "-o", str(out), "--metrics", "hd95", "--margin", "hd95=1",
          "--workers", "1"])
    stdout = capsys.readouterr().out
    (row,) = _csv(out / "comparison.csv")
    assert (row["wins"], row["ties"], row["losses"]) == ("8", "0", "2")
    assert (row["n_imputed"], row["missing_distance"]) == ("2", "worst")
    assert row["non_inferior"] == "False"
    assert "worst-case 2" in stdout


# ---- 3. honest intervals ----------------------------------------------------------------------
def test_default_interval_covers_at_n_20_by_simulation():
    """400 cohorts of 20 Dice-like cases (fixed seed): the default interval covers the true
    mean about 95% of the time and its lower bound lies above the truth about 2.5% of the
    time (the percentile bootstrap: 92% and 4%; bench/ci_coverage.py runs 4000 cohorts)."""
    rng = np.random.default_rng(7)
    opts = StatsOptions(resamples=2000)
    truth, cover, above, above_pct = 0.85, 0, 0, 0
    for i in range(400):
        x = rng.normal(truth, 0.05, 20)
        ci = mean_ci(x, opts.replace(seed=i))
        cover += ci["ci_low"] <= truth <= ci["ci_high"]
        above += ci["ci_low"] > truth
        above_pct += mean_ci(x, opts.replace(seed=i, ci_method="percentile"))["ci_low"] > truth
    assert 0.93 <= cover / 400 <= 0.975
    assert above / 400 <= 0.035
    assert above_pct >= above  # the old method errs at least as often


def test_bca_matches_scipy_at_large_n_and_t_matches_the_formula():
    """At n = 300 the small-sample expansion is negligible, so medseg's BCa must agree with
    scipy.stats.bootstrap(method='BCa') within the Monte-Carlo error, on skewed data."""
    rng = np.random.default_rng(11)
    x = rng.exponential(1.0, 300)
    ours = mean_ci(x, StatsOptions(resamples=40_000, seed=1))
    ref = sps.bootstrap((x,), np.mean, method="BCa", n_resamples=40_000,
                        random_state=np.random.default_rng(2)).confidence_interval
    assert ours["ci_low"] == pytest.approx(ref.low, abs=6 * ours["ci_low_mc_se"])
    assert ours["ci_high"] == pytest.approx(ref.high, abs=6 * ours["ci_high_mc_se"])
    t = mean_ci(x, StatsOptions(ci_method="t"))
    half = sps.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((x.mean() - half, x.mean() + half))
    one = mean_ci(x, StatsOptions(ci_method="t", one_sided=True))
    assert one["ci_low"] == pytest.approx(x.mean() - half * sps.t.ppf(0.95, 299)
                                          / sps.t.ppf(0.975, 299))


def test_seed_and_monte_carlo_error_are_reported_and_respected():
    """Before: 2000 resamples and seed 0 fixed; liver ci_low moved 0.8900-0.8952 across
    seeds. Now the bound's Monte-Carlo SE is reported and seeds agree within it."""
    rng = np.random.default_rng(3)
    x = np.clip(rng.normal(0.9, 0.04, 12), 0, 1)
    lows = [mean_ci(x, StatsOptions(seed=s))["ci_low"] for s in range(8)]
    se = mean_ci(x, StatsOptions(seed=0))["ci_low_mc_se"]
    assert 0 < se < 0.002
    assert max(lows) - min(lows) <= 8 * se
    assert mean_ci(x, StatsOptions(seed=5)) == mean_ci(x, StatsOptions(seed=5))
    # a criterion within 2 MC SE of its threshold is flagged
    rows = [{"case": f"c{i}", "class": "liver", "label": 1, "status": "ok", "dice": v}
            for i, v in enumerate(x)]
    c = Criterion(id="L", class_name="liver", label=1, metric="dice", statistic="ci_low",
                  op=">=", threshold=lows[0])
    (item,) = judge([c], rows)["criteria"]
    assert item["mc_flag"] is True and "Monte-Carlo" in item["note"]
    far = Criterion(**{**c.__dict__, "threshold": 0.5})
    assert judge([far], rows)["criteria"][0]["mc_flag"] is False


def test_non_inferiority_at_a_truth_on_the_margin_is_rare():
    """Truth B - A = -margin: non-inferiority must be declared in about 2.5% of cohorts. With
    300 cohorts the binomial noise is +-0.9%, so the rate is also held against the exact
    t-interval's on the very same cohorts (normal differences: t is exact)."""
    rng = np.random.default_rng(5)
    declared = declared_t = 0
    for i in range(300):
        a = rng.normal(0.85, 0.05, 20)
        b = a + rng.normal(-0.02, 0.03, 20)
        r = paired_difference(a, b, "dice", margin=0.02,
                              options=StatsOptions(resamples=2000, seed=i))
        declared += bool(r["non_inferior"])
        declared_t += mean_ci(b - a, StatsOptions(ci_method="t"))["ci_low"] > -0.02
    assert declared / 300 <= 0.055
    assert declared <= declared_t + 3


def test_cluster_bootstrap_widens_for_correlated_cases():
    """Two scans per patient with the same value: the case bootstrap sees 20 independent
    values, the cluster bootstrap (and the cluster t) only 10, and is wider by ~sqrt(2)."""
    rng = np.random.default_rng(9)
    per_patient = rng.normal(0.85, 0.05, 10)
    x = np.repeat(per_patient, 2)
    cases = [f"p{i // 2}_s{i % 2}" for i in range(20)]
    clusters = {c: c.split("_")[0] for c in cases}
    plain = mean_ci(x, StatsOptions(ci_method="t"))
    clus = mean_ci(x, StatsOptions(ci_method="t", clusters=clusters), cases=cases)
    direct = mean_ci(per_patient, StatsOptions(ci_method="t"))
    assert clus["ci_high"] - clus["ci_low"] == pytest.approx(
        (direct["ci_high"] - direct["ci_low"]), rel=0.08)  # sqrt(10/9) vs ddof
    assert clus["ci_high"] - clus["ci_low"] > 1.3 * (plain["ci_high"] - plain["ci_low"])
    boot = mean_ci(x, StatsOptions(clusters=clusters, min_n=2), cases=cases)
    boot_direct = mean_ci(per_patient, StatsOptions(min_n=2))
    assert boot["ci_low"] == pytest.approx(boot_direct["ci_low"], abs=0.004)


# ---- 4. criteria rounding -------------------------------------------------------------------
def test_value_and_threshold_are_rounded_alike():
    """Before: the value was rounded to 12 decimals, the threshold not, so a value equal to a
    13-decimal threshold passed '>' (0.1234567890126 -> 0.123456789013)."""
    t = 0.1234567890126
    rows = [{"case": f"c{i}", "class": "x", "label": 1, "status": "ok", "dice": t}
            for i in range(10)]
    results = {}
    for op in (">", ">=", "<", "<="):
        c = Criterion(id=op, class_name="x", label=1, metric="dice", statistic="mean", op=op,
                      threshold=t)
        results[op] = judge([c], rows)["criteria"][0]["result"]
    assert results == {">": "FAIL", ">=": "PASS", "<": "FAIL", "<=": "PASS"}


# ---- 5. Wilcoxon near-ties -----------------------------------------------------------------
def test_last_bit_differences_do_not_change_the_wilcoxon_p():
    """Before: n = 16 differences with tied magnitudes gave p = 0.108 (ties: normal
    approximation) but p = 0.046 when the ties differed in the last bit (exact test)."""
    mags = np.array([0.01, 0.01, 0.02, 0.02, 0.03, 0.03, 0.04, 0.04, 0.05, 0.05, 0.06,
                     0.06, 0.07, 0.07, 0.08, 0.08])
    signs = np.array([1, -1, 1, 1, -1, 1, 1, 1, -1, 1, 1, 1, 1, -1, 1, 1])
    tied = mags * signs
    noisy = tied.copy()
    noisy[1::2] = np.nextafter(noisy[1::2], np.inf)  # last-bit float noise on every other
    assert np.unique(np.abs(noisy)).size == 16  # scipy alone would see no ties
    p_raw_tied = sps.wilcoxon(tied).pvalue
    p_raw_noisy = sps.wilcoxon(noisy).pvalue
    assert p_raw_tied != pytest.approx(p_raw_noisy, rel=0.05)  # the finding, reproduced
    p_tied, n, method = wilcoxon_test(tied)
    assert wilcoxon_test(noisy) == (p_tied, n, method)
    assert (n, method) == (16, "normal")
    # the p that scipy (and R's wilcox.test(d, correct = FALSE)) gives on the tied values
    assert p_tied == pytest.approx(sps.wilcoxon(tied, method="asymptotic",
                                                correction=False).pvalue)


def test_wilcoxon_methods_follow_the_documented_rule():
    rng = np.random.default_rng(1)
    d = rng.normal(0.01, 0.02, 20)
    p, n, method = wilcoxon_test(d)
    assert method == "exact" and p == pytest.approx(sps.wilcoxon(d, method="exact").pvalue)
    small = np.array([0.1, -0.1, 0.2, 0.3, 0.3, 0.4, 0.5, -0.2])
    p, n, method = wilcoxon_test(small)
    assert method == "permutation" and n == 8
    # exact permutation p by enumerating all 2^8 sign flips, independently
    ranks = sps.rankdata(np.abs(small))
    observed = ranks[small > 0].sum()
    flips = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)
    stats_all = (flips * ranks).sum(axis=1)
    mean = ranks.sum() / 2
    expected = np.mean(np.abs(stats_all - mean) >= abs(observed - mean) - 1e-9)
    assert p == pytest.approx(expected)


# ---- 6. the documentation errors -----------------------------------------------------------
def test_docs_no_longer_claim_ccc_equals_icc_or_misname_the_wilcoxon_method():
    text = DOCS.read_text()
    assert "up to n/(n-1)" not in text
    assert "exact distribution for small n without ties, normal approximation otherwise" \
        not in text
    assert "permutation" in text and "ICC(A,1)" in text


# ---- 7. STAPLE per-reader performance -------------------------------------------------------
def test_staple_reports_each_readers_sensitivity_and_specificity():
    truth = cube(10)
    under = truth.copy()
    under[4:14, 4:14, 4:7] = 0  # reader 3 misses 3 of 10 slices
    maps = [LabelMap(a[None], AFFINE) for a in (truth, truth, under)]
    consensus, perf = staple_with_performance(maps, [1])
    assert np.array_equal(consensus.data, truth)
    sens, spec = perf[1]["sensitivity"], perf[1]["specificity"]
    # against the consensus, by voxel counts (STAPLE's estimate converges to these here)
    assert sens[0] == pytest.approx(1.0, abs=1e-3) and sens[1] == pytest.approx(1.0, abs=1e-3)
    assert sens[2] == pytest.approx(0.7, abs=0.01)
    assert all(s == pytest.approx(1.0, abs=1e-3) for s in spec)


def test_readers_report_carries_reader_performance(tmp_path, capsys):
    sides = [8, 10, 12]
    for i, side in enumerate(sides):
        write(tmp_path / "r1", f"c{i}", cube(side))
        write(tmp_path / "r2", f"c{i}", cube(side))
        write(tmp_path / "r3", f"c{i}", cube(side, 2))
        write(tmp_path / "pred", f"c{i}", cube(side))
    out = tmp_path / "out"
    main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "r1"),
          "--ref", str(tmp_path / "r2"), "--ref", str(tmp_path / "r3"), "-o", str(out),
          "--labels", "organ=1", "--workers", "1"])
    stdout = capsys.readouterr().out
    perf = json.loads((out / "summary.json").read_text())["readers"]["reader_performance"]
    r3 = perf["organ"]["R3"]["sensitivity"]
    expected = np.mean([(s - 2) / s for s in sides])  # R3 shifted by 2 voxels
    assert r3["n"] == 3 and r3["mean"] == pytest.approx(expected, abs=0.01)
    assert perf["organ"]["R1"]["sensitivity"]["mean"] == pytest.approx(1.0, abs=1e-3)
    assert "R3: STAPLE sensitivity" in stdout
    assert "Reader performance (STAPLE estimates)" in (out / "report.html").read_text()


# ---- endpoints and the recorded settings ------------------------------------------------------
def test_primary_and_secondary_endpoints_form_a_fixed_sequence(tmp_path):
    from medseg.evaluation.study.criteria import load_criteria

    rows = [{"case": f"c{i}", "class": "liver", "label": 1, "status": "ok", "dice": 0.9,
             "hd95": 3.0 + i % 2} for i in range(12)]
    items = [
        {"id": "P", "class": "liver", "metric": "dice", "statistic": "mean", "op": ">=",
         "threshold": 0.85, "endpoint": "primary"},
        {"id": "S1", "class": "liver", "metric": "hd95", "statistic": "mean", "op": "<=",
         "threshold": 3.0, "endpoint": "secondary"},  # fails (3.5)
        {"id": "S2", "class": "liver", "metric": "dice", "statistic": "median", "op": ">=",
         "threshold": 0.5, "endpoint": "secondary"},  # would pass, but the gate is shut
    ]
    crits = load_criteria(_crit(tmp_path, items), {1: "liver"})
    out = judge(crits, rows)
    assert [c["result"] for c in out["criteria"]] == ["PASS", "FAIL", "NOT TESTED"]
    assert out["passed"] is True and out["verdict"] == "PASS"  # the primary decides
    failing = judge(load_criteria(_crit(tmp_path, [{**items[0], "threshold": 0.95},
                                                   items[2]], "b.json"), {1: "liver"}), rows)
    assert [c["result"] for c in failing["criteria"]] == ["FAIL", "NOT TESTED"]
    with pytest.raises(Exception, match="none is primary"):
        load_criteria(_crit(tmp_path, [items[1]], "c.json"), {1: "liver"})


def test_interval_settings_are_recorded_and_change_the_numbers(tmp_path, capsys):
    sides = [8, 10, 12, 8, 10, 12, 8, 10, 12, 10]
    folders = shifted_cohort(tmp_path, sides, {"A": [1, 2] * 5})
    docs = {}
    for method in ("t", "percentile"):
        out = tmp_path / method
        assert main(["evaluate", "--pred", str(folders["A"]), "--ref", str(folders["ref"]),
                     "--labels", "organ=1", "-o", str(out), "--workers", "1", "--ci-method",
                     method, "--ci-level", "0.9", "--resamples", "500", "--seed", "3"]) == 0
        docs[method] = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    rec = docs["percentile"]["settings"]["intervals"]
    assert (rec["ci_method"], rec["ci_level"], rec["resamples"], rec["seed"]) == \
        ("percentile", 0.9, 500, 3)
    assert docs["t"]["settings"]["intervals"]["resamples"] is None
    dice = np.array([(s - k) / s for s, k in zip(sides, [1, 2] * 5, strict=True)])
    t = docs["t"]["classes"]["organ"]["metrics"]["dice"]
    half = sps.t.ppf(0.95, 9) * dice.std(ddof=1) / math.sqrt(10)
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((dice.mean() - half, dice.mean() + half))
    assert "BCa" not in docs["t"]["settings"]["bootstrap"]
    html = (tmp_path / "percentile" / "report.html").read_text()
    assert "500 resamples" in html and "seed 3" in html


def test_metadata_columns_are_merged_into_per_case_csv(tmp_path, capsys):
    folders = shifted_cohort(tmp_path, [8, 10, 12], {"A": [1, 1, 1]})
    meta = tmp_path / "meta.csv"
    meta.write_text("case,site,patient_id\ncase00,north,p1\ncase01,south,p1\n")
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(folders["A"]), "--ref", str(folders["ref"]),
                 "-o", str(out), "--metadata", str(meta), "--workers", "1"]) == 0
    capsys.readouterr()
    rows = _csv(out / "per_case.csv")
    assert [r["meta_site"] for r in rows if r["class"] == "1"] == ["north", "south", ""]
    assert rows[0]["meta_patient_id"] == "p1"
    assert "metadata" not in json.loads((out / "summary.json").read_text())
    # --cluster: whole patients resampled (case00 and case01 are one patient: 2 clusters)
    out = tmp_path / "clustered"
    assert main(["evaluate", "--pred", str(folders["A"]), "--ref", str(folders["ref"]),
                 "-o", str(out), "--metadata", str(meta), "--cluster", "patient_id",
                 "--min-n", "2", "--ci-method", "t", "--workers", "1"]) == 0
    doc = json.loads((out / "summary.json").read_text())
    assert doc["settings"]["intervals"]["cluster"] == "patient_id"
    dice = doc["classes"]["1"]["metrics"]["dice"]
    values = np.array([7 / 8, 9 / 10, 11 / 12])
    mean = values.mean()
    resid = np.array([values[0] + values[1] - 2 * mean, values[2] - mean])  # cluster totals
    se = math.sqrt(2 / 1 * np.sum(resid ** 2)) / 3
    assert dice["ci_low"] == pytest.approx(mean - sps.t.ppf(0.975, 1) * se)


def test_criteria_on_all_classes_subgroups_agreement_and_detection(tmp_path):
    from medseg.evaluation.agreement import bland_altman
    from medseg.evaluation.study.criteria import load_criteria

    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        for label, name in ((1, "liver"), (2, "lesion")):
            ref_ml = float(rng.uniform(10, 100))
            rows.append({"case": f"c{i}", "class": name, "label": label, "status": "ok",
                         "dice": 0.9 if label == 1 else 0.6 + 0.01 * i,
                         "ref_volume_ml": ref_ml, "pred_volume_ml": ref_ml * 1.05 + i % 3,
                         "lesion_n_ref": 2, "lesion_n_pred": 2, "lesion_tp": 1 + (i % 2),
                         "lesion_fn": 1 - (i % 2), "lesion_fp": 1 - (i % 2),
                         "lesion_dice": 0.5})
    metadata = {f"c{i}": {"site": "north" if i < 6 else "south"} for i in range(12)}
    items = [
        {"id": "ALL", "class": "all", "metric": "dice", "statistic": "mean", "op": ">=",
         "threshold": 0.6},
        {"id": "SOUTH", "class": "lesion", "metric": "dice", "statistic": "mean", "op": ">=",
         "threshold": 0.66, "subgroup": "site=south"},
        {"id": "CCC", "class": "liver", "metric": "volume", "statistic": "ccc", "op": ">=",
         "threshold": 0.5},
        {"id": "SENS", "class": "lesion", "metric": "detection", "statistic": "sensitivity",
         "op": ">=", "threshold": 0.75},
    ]
    crits = load_criteria(_crit(tmp_path, items), {1: "liver", 2: "lesion"})
    out = {c["id"]: c for c in judge(crits, rows, metadata=metadata)["criteria"]}
    assert out["ALL[liver]"]["result"] == "PASS" and out["ALL[lesion]"]["result"] == "PASS"
    south = [0.6 + 0.01 * i for i in range(6, 12)]
    assert out["SOUTH"]["value"] == pytest.approx(np.mean(south)) and out["SOUTH"]["n"] == 6
    liver = [r for r in rows if r["label"] == 1]
    ccc = bland_altman([r["pred_volume_ml"] for r in liver],
                       [r["ref_volume_ml"] for r in liver])["ccc"]
    assert out["CCC"]["value"] == pytest.approx(ccc) and out["CCC"]["n"] == 12
    assert out["SENS"]["value"] == pytest.approx(18 / 24) and out["SENS"]["result"] == "PASS"
    few = judge(crits[2:3], rows[:8], metadata=metadata)["criteria"][0]
    assert few["result"] == "NOT EVALUABLE"  # 4 cases: below the minimum n for a cohort figure
    with pytest.raises(Exception, match="unknown volume statistic"):
        load_criteria(_crit(tmp_path, [{**items[2], "statistic": "mean"}], "x.json"),
                      {1: "liver"})


def test_majority_vote_consensus(tmp_path, capsys):
    from medseg.evaluation.study.readers import majority_consensus

    truth = cube(10)
    maps = [LabelMap(a[None], AFFINE) for a in (truth, cube(10, 1), cube(10, -1))]
    voted = majority_consensus(maps, [1]).data
    votes = sum((m.data == 1).astype(int) for m in maps)
    assert np.array_equal(voted == 1, votes >= 2)
    for i, side in enumerate([8, 10]):
        for reader, shift in (("r1", 0), ("r2", 1)):
            write(tmp_path / reader, f"c{i}", cube(side, shift))
        write(tmp_path / "pred", f"c{i}", cube(side))
    out = tmp_path / "out"
    main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "r1"), "--ref",
          str(tmp_path / "r2"), "-o", str(out), "--consensus", "majority", "--workers", "1"])
    capsys.readouterr()
    doc = json.loads((out / "summary.json").read_text())
    assert doc["readers"]["consensus"].startswith("majority vote")
    # two readers: the consensus is their intersection, a cube of side - 1 along axis 0
    dice = doc["classes"]["1"]["metrics"]["dice"]
    assert dice["mean"] == pytest.approx(np.mean([2 * (s - 1) / (2 * s - 1) for s in (8, 10)]))
