"""CSV injection (issue 16, item 7): every CSV cell that a spreadsheet would run as a formula
starts with ``'``; numbers, negative ones included, stay numbers. Checked through the real
CLI (``medseg segment``, ``medseg evaluate``) with hostile case, label and file names."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from medseg.cli import main
from medseg.io import write_image
from medseg.io.csvsafe import safe_cell
from medseg.volume import LabelMap, Volume
from tests.hostile import FORMULA_NAMES, write_named_bundle

AFFINE = np.diag([1.5, 1.5, 2.0, 1.0])
RUNNABLE = ("=", "+", "-", "@", "\t", "\r")


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _assert_no_formula(rows):
    """No text cell starts like a formula; the only such cells are number literals."""
    for row in rows:
        for value in row.values():
            if value and value.startswith(RUNNABLE):
                float(value)  # a number: raises for any text left runnable


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+2", "'=1+2"), ("+x", "'+x"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("-0.5", "-0.5"), ("-1e-3", "-1e-3"), ("-inf", "-inf"),
    ("liver", "liver"), (-0.5, -0.5), (3, 3), ("", ""),
])
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


def test_segment_volumes_csv_neutralises_hostile_label_and_case_names(tmp_path):
    model = write_named_bundle(tmp_path / "hostile.medseg", FORMULA_NAMES[:2])
    rng = np.random.default_rng(0)
    arr = rng.normal(100, 10, size=(18, 16, 12)).astype(np.float32)
    arr[4:10, 4:10, 3:8] += 300
    case = "=HYPERLINK(1)"
    write_image(Volume(arr[None], AFFINE), tmp_path / "in" / f"{case}.nii.gz")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "in"), "-o", str(out), "-m", str(model),
                 "--device", "cpu", "--quiet", "--instances", *FORMULA_NAMES[:2]]) == 0
    rows = _read(out / f"{case}_volumes.csv")
    assert [r["name"] for r in rows] == [f"'{n}" for n in FORMULA_NAMES[:2]]
    _assert_no_formula(rows)
    instances = _read(out / f"{case}_instances.csv")
    assert instances and {r["name"] for r in instances} <= {f"'{n}" for n in FORMULA_NAMES}
    _assert_no_formula(instances)


def test_evaluate_csvs_neutralise_hostile_names_and_keep_negative_numbers(tmp_path):
    ref = np.zeros((16, 16, 10), np.uint8)
    ref[3:12, 3:12, 2:8] = 1
    pred = np.zeros_like(ref)
    pred[4:10, 4:10, 3:7] = 1  # smaller than the reference: a negative relative volume diff
    for case in ("=1+2", "@SUM(A1)", "-2+3", "plain"):
        write_image(LabelMap(pred[None], AFFINE), tmp_path / "pred" / f"{case}.nii.gz")
        write_image(LabelMap(ref[None], AFFINE), tmp_path / "ref" / f"{case}.nii.gz")
    out = tmp_path / "report"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                 "-o", str(out), "--labels", "+cmd|calc=1", "--workers", "1"]) == 0
    per_case = _read(out / "per_case.csv")
    assert {r["case"] for r in per_case} == {"'=1+2", "'@SUM(A1)", "'-2+3", "plain"}
    assert {r["class"] for r in per_case if r["label"]} == {"'+cmd|calc"}
    diffs = [float(r["rel_volume_diff_pct"]) for r in per_case if r["label"]]
    assert all(d < 0 and math.isfinite(d) for d in diffs)  # numeric, not quoted
    _assert_no_formula(per_case)
    summary = _read(out / "summary.csv")
    assert {r["class"] for r in summary if r["label"]} == {"'+cmd|calc"}
    _assert_no_formula(summary)
    _assert_no_formula(_read(out / "volume_agreement.csv"))
