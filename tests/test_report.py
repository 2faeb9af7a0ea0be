"""medseg.evaluation.report: statistics, bootstrap, and the four report files."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest

from medseg.evaluation.pairs import Pairing
from medseg.evaluation.report import (
    STATS,
    bootstrap_ci,
    box_strip_svg,
    describe,
    summarize,
    worst_cases,
    write_report,
)

NAN = float("nan")


def test_bootstrap_ci_is_reproducible_and_close_to_the_normal_interval():
    rng = np.random.default_rng(1)
    x = rng.normal(0.8, 0.1, size=200)
    lo, hi = bootstrap_ci(x)
    assert (lo, hi) == bootstrap_ci(x)  # fixed seed
    assert lo < x.mean() < hi
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert hi - lo == pytest.approx(2 * half, rel=0.1)
    assert bootstrap_ci(x, seed=5) != (lo, hi)


def test_bootstrap_ci_matches_a_loop_over_the_same_resamples():
    x = np.array([0.5, 0.9, 0.7, 0.95, 0.2, 0.85])
    rng = np.random.default_rng(0)
    idx = rng.integers(0, x.size, size=(2000, x.size))
    means = np.array([np.mean([x[i] for i in row]) for row in idx])
    assert bootstrap_ci(x) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def test_bootstrap_ci_edge_cases():
    assert all(math.isnan(v) for v in bootstrap_ci([NAN, NAN]))
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert bootstrap_ci([0.7, NAN, 0.7]) == (0.7, 0.7)


def test_describe_counts_and_ignores_nan():
    values = [0.9, NAN, 0.5, 0.7, None, 0.8]
    d = describe(values)
    finite = np.array([0.9, 0.5, 0.7, 0.8])
    assert (d["n"], d["n_nan"]) == (4, 2)
    assert d["mean"] == pytest.approx(finite.mean())
    assert d["std"] == pytest.approx(finite.std(ddof=1))
    assert d["median"] == pytest.approx(np.median(finite))
    assert (d["q1"], d["q3"]) == pytest.approx(tuple(np.percentile(finite, [25, 75])))
    assert (d["min"], d["max"]) == (0.5, 0.9)
    assert set(d) == set(STATS)
    empty = describe([NAN])
    assert empty["n"] == 0 and empty["n_nan"] == 1 and math.isnan(empty["mean"])


ROWS = [
    {"case": "a", "class": "liver", "label": 1, "status": "ok", "dice": 0.9, "hd95": 2.0},
    {"case": "b", "class": "liver", "label": 1, "status": "both_empty", "dice": NAN, "hd95": NAN},
    {"case": "c", "class": "liver", "label": 1, "status": "pred_empty", "dice": 0.0, "hd95": NAN},
    {"case": "d", "class": "liver", "label": 1, "status": "error", "error": "d.nii: broken"},
    {"case": "a", "class": "all", "label": None, "status": "ok", "pixel_accuracy": 0.99},
]


def test_summarize_reports_coverage():
    s = summarize(ROWS, ["dice", "hd95", "pixel_accuracy"])
    liver = s["liver"]
    assert liver["n_cases"] == 4
    assert liver["status"] == {"ok": 1, "both_empty": 1, "pred_empty": 1, "ref_empty": 0,
                               "error": 1}
    assert liver["metrics"]["dice"]["n"] == 2 and liver["metrics"]["dice"]["n_nan"] == 1
    assert liver["metrics"]["dice"]["mean"] == pytest.approx(0.45)
    assert liver["metrics"]["hd95"]["n"] == 1 and liver["metrics"]["hd95"]["n_nan"] == 2
    assert liver["metrics"]["dice"]["n_errors"] == 1
    assert "pixel_accuracy" not in liver["metrics"]
    assert set(s["all"]["metrics"]) == {"pixel_accuracy"}


def test_worst_cases_respect_direction():
    rows = [{"case": c, "class": "x", "dice": d, "hd95": h}
            for c, d, h in (("a", 0.9, 1.0), ("b", 0.2, 9.0), ("c", 0.5, NAN))]
    assert worst_cases(rows, "dice", k=2) == {"x": [("b", 0.2), ("c", 0.5)]}
    assert worst_cases(rows, "hd95") == {"x": [("b", 9.0), ("a", 1.0)]}


def test_write_report_files(tmp_path):
    pairing = Pairing(pred_only=["p/x.nii.gz"], ref_only=["r/y.nii.gz"], ignored=["p/a.txt"])
    settings = {"software": {"medseg": "0.1.0", "numpy": np.__version__}, "empty_score": None,
                "nsd_tolerance_mm": {"liver": 2.0}}
    _summary, files = write_report(ROWS, tmp_path / "out", settings=settings, pairing=pairing)
    assert sorted(p.name for p in files.values()) == [
        "per_case.csv", "report.html", "summary.csv", "summary.json", "volume_agreement.csv"]
    with open(files["per_case"]) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["ok", "both_empty", "pred_empty", "error", "ok"]
    assert rows[1]["dice"] == "nan" and rows[3]["dice"] == "" and rows[3]["error"]
    with open(files["summary_csv"]) as fh:
        srows = list(csv.DictReader(fh))
    dice = next(r for r in srows if r["class"] == "liver" and r["metric"] == "dice")
    assert (dice["n"], dice["n_nan"], dice["n_errors"]) == ("2", "1", "1")
    text = files["summary_json"].read_text()
    assert "NaN" not in text  # strict JSON: undefined values are null
    doc = json.loads(text)
    assert doc["unpaired"]["pred_only"] == ["p/x.nii.gz"]
    assert doc["errors"] == {"d": "d.nii: broken"}
    assert doc["classes"]["liver"]["metrics"]["hd95"]["std"] is None
    html = files["html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert "<svg" in html and "dice per class" in html and "hd95 per class" in html
    assert "p/x.nii.gz" in html and "r/y.nii.gz" in html and "d.nii: broken" in html
    assert "0.1.0" in html
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"(src|href)=[\"']?(https?:|//)", html)
    assert not list((tmp_path / "out").glob(".*part*"))  # atomic writes left no temp files


def test_svg_handles_empty_and_constant_groups():
    svg = box_strip_svg({"a": [NAN, NAN], "b": [1.0, 1.0, 1.0]}, "t <&>", "mm")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "t &lt;&amp;&gt;" in svg and "(n=0)" in svg and "(n=3)" in svg
