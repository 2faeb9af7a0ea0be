"""Paired comparison of two models: bootstrap CI sign, Wilcoxon n, win/tie/loss, margin, Holm,
and ``medseg compare`` end to end on cohorts whose Dice is known exactly."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy.stats import wilcoxon as scipy_wilcoxon

from medseg.cli import main
from medseg.evaluation.intervals import StatsOptions
from medseg.evaluation.study.compare import compare_rows, margin_for
from medseg.evaluation.study.paired import holm, paired_difference, wilcoxon
from tests.study_cohorts import shifted_cohort

SIDES = [8, 10, 12, 8, 10, 12, 8, 10]
#: these cohorts are smaller than the default minimum n (10): the arithmetic tests lower it
SMALL = StatsOptions(min_n=2)


def test_b_better_by_a_known_margin_gives_a_ci_above_zero():
    a = np.array([0.70, 0.80, 0.75, 0.90, 0.60, 0.85, 0.78, 0.82])
    rng = np.random.default_rng(3)
    b = a + 0.05 + rng.normal(0, 0.01, a.size)
    r = paired_difference(a, b, "dice", options=SMALL)
    assert r["mean_diff"] == pytest.approx(float(np.mean(b - a)))
    assert 0 < r["ci_low"] < r["mean_diff"] < r["ci_high"]
    assert (r["wins"], r["ties"], r["losses"]) == (8, 0, 0)
    assert r["n_wilcoxon"] == 8 and r["p_wilcoxon"] == pytest.approx(2 / 2**8)  # exact test
    # for a lower-is-better metric the same numbers mean B loses every case
    r = paired_difference(a, b, "hd95", options=SMALL)
    assert (r["wins"], r["losses"]) == (0, 8) and r["ci_low"] > 0


def test_equal_models_give_a_ci_covering_zero():
    a = np.array([0.7, 0.8, 0.9, 0.6, 0.75, 0.85])
    r = paired_difference(a, a.copy(), "dice", options=SMALL)
    assert r["ci_low"] <= 0 <= r["ci_high"] and r["mean_diff"] == 0
    assert (r["ties"], r["n_wilcoxon"]) == (6, 0) and math.isnan(r["p_wilcoxon"])
    d = np.array([0.02, -0.02, 0.01, -0.01, 0.03, -0.03])  # symmetric: mean 0
    r = paired_difference(a, a + d, "dice", options=SMALL)
    assert r["ci_low"] < 0 < r["ci_high"]
    assert r["p_wilcoxon"] == pytest.approx(scipy_wilcoxon(d).pvalue) and r["p_wilcoxon"] > 0.5


def test_pairs_with_nan_are_dropped_and_zero_differences_leave_wilcoxon():
    a = [0.5, 0.6, math.nan, 0.8, 0.9]
    b = [0.6, 0.6, 0.7, 0.9, math.nan]
    r = paired_difference(a, b, "dice")
    assert (r["n_pairs"], r["n_excluded"]) == (3, 2)
    assert r["n_wilcoxon"] == 2 and (r["wins"], r["ties"], r["losses"]) == (2, 1, 0)
    assert wilcoxon([0.0, 0.0]) == (pytest.approx(math.nan, nan_ok=True), 0)


def test_non_inferiority_margin():
    a = np.linspace(0.7, 0.9, 12)
    b = a - 0.01  # B worse by exactly 0.01 in every case: CI is [-0.01, -0.01]
    assert paired_difference(a, b, "dice", margin=0.02)["non_inferior"] is True
    assert paired_difference(a, b, "dice", margin=0.005)["non_inferior"] is False
    # HD95 (lower is better): B larger by 1 mm is non-inferior at 2 mm, not at 0.5 mm
    assert paired_difference(a, a + 1.0, "hd95", margin=2.0)["non_inferior"] is True
    assert paired_difference(a, a + 1.0, "hd95", margin=0.5)["non_inferior"] is False
    assert margin_for(0.02, "dice") == 0.02 and margin_for(0.02, "hd95") is None
    assert margin_for({"hd95": 1.0, "default": 0.02}, "hd95") == 1.0


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.2]) == pytest.approx([0.5, 0.4])
    out = holm([math.nan, 0.01])
    assert math.isnan(out[0]) and out[1] == pytest.approx(0.01)


def test_compare_rows_pairs_cases_and_classes():
    rows_a = [{"case": c, "class": "x", "label": 1, "status": "ok", "dice": d}
              for c, d in (("p", 0.5), ("q", 0.6), ("r", 0.7))]
    rows_b = [{**r, "dice": r["dice"] + 0.1} for r in rows_a]
    rows_b[2] = {**rows_b[2], "status": "error"}  # a failed case leaves the pairs
    (row,) = compare_rows({"A": rows_a, "B": rows_b}, ["dice"])
    assert row["n_pairs"] == 2 and row["mean_diff"] == pytest.approx(0.1)
    assert row["cases"] == ["p", "q"]


def test_medseg_compare_on_shifted_cubes(tmp_path, capsys):
    """A is off by 2 voxels, B by 1: B - A Dice is exactly 1/side in every case."""
    folders = shifted_cohort(tmp_path, SIDES, {"A": [2] * len(SIDES), "B": [1] * len(SIDES)})
    out = tmp_path / "cmp"
    code = main(["compare", "--ref", str(folders["ref"]), "--pred", str(folders["A"]),
                 "--pred", str(folders["B"]), "-o", str(out), "--margin", "0.02",
                 "--metrics", "dice", "hd95", "--workers", "1", "--min-n", "8"])
    assert code == 0
    assert "B - A" in capsys.readouterr().out
    with open(out / "comparison.csv") as fh:
        rows = {r["metric"]: r for r in csv.DictReader(fh)}
    dice = rows["dice"]
    assert float(dice["mean_diff"]) == pytest.approx(np.mean([1 / s for s in SIDES]))
    assert float(dice["mean_a"]) == pytest.approx(np.mean([(s - 2) / s for s in SIDES]))
    assert float(dice["ci_low"]) > 0 and dice["non_inferior"] == "True"
    assert (dice["wins"], dice["ties"], dice["losses"]) == ("8", "0", "0")
    assert dice["n_wilcoxon"] == "8"
    hd95 = rows["hd95"]
    assert float(hd95["mean_diff"]) == pytest.approx(-1.0)  # 1 voxel of 1 mm closer
    assert hd95["non_inferior"] == ""  # a bare margin applies to unitless metrics only
    doc = json.loads((out / "comparison.json").read_text())
    assert doc["baseline"] == "A" and len(doc["comparisons"]) == 2
    html = (out / "comparison.html").read_text()
    assert "<svg" in html and "dice: 1" in html and "8/0/0" in html
    for model in ("A", "B"):
        assert (out / model / "report.html").is_file()


def test_medseg_compare_equal_models(tmp_path):
    shifts = [1, 2] * 4
    folders = shifted_cohort(tmp_path, [10] * 8, {"A": shifts, "B": shifts[::-1]})
    out = tmp_path / "cmp"
    assert main(["compare", "--ref", str(folders["ref"]), "--pred", str(folders["A"]),
                 "--pred", str(folders["B"]), "-o", str(out), "--metrics", "dice",
                 "--workers", "1", "--min-n", "8"]) == 0
    with open(out / "comparison.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["mean_diff"]) == pytest.approx(0.0, abs=1e-12)
    assert float(row["ci_low"]) < 0 < float(row["ci_high"])
    assert (row["wins"], row["losses"]) == ("4", "4")


def test_medseg_compare_usage_errors(tmp_path, capsys):
    folders = shifted_cohort(tmp_path, [8, 10], {"A": [1, 1]})
    assert main(["compare", "--ref", str(folders["ref"]), "--pred", str(folders["A"]),
                 "-o", str(tmp_path / "o")]) == 2
    assert "at least two --pred" in capsys.readouterr().err
    assert main(["compare", "--ref", str(folders["ref"]), "--pred", str(folders["A"]),
                 "--pred", str(folders["A"]), "--metrics", "dise", "-o",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown dise" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
