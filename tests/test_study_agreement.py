"""Volume agreement: Bland-Altman bias and limits (mL and %) and Lin's CCC on constructed
volumes, by hand and end to end through ``medseg evaluate``."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from medseg.cli import main
from medseg.evaluation.agreement import bland_altman, lins_ccc
from tests.study_cohorts import SPACING, cube, write

REF = np.array([10.0, 20.0, 30.0, 40.0])
DIFF = np.array([1.0, -1.0, 3.0, 1.0])  # mean 1, SD sqrt(8/3)


def test_bland_altman_by_hand():
    ba = bland_altman(REF + DIFF, REF)
    sd = math.sqrt(8 / 3)
    assert ba["n"] == 4
    assert ba["ml"]["bias"] == pytest.approx(1.0)
    assert ba["ml"]["sd"] == pytest.approx(sd)
    assert ba["ml"]["loa_low"] == pytest.approx(1 - 1.96 * sd)
    assert ba["ml"]["loa_high"] == pytest.approx(1 + 1.96 * sd)
    half = 3.182446305284263 * sd / 2  # t(0.975, 3) SD / sqrt(4)
    assert ba["ml"]["bias_ci_low"] == pytest.approx(1 - half)
    pct = 100 * DIFF / (REF + DIFF / 2)  # % of the mean of both volumes
    assert ba["pct"]["bias"] == pytest.approx(pct.mean())
    assert ba["pct"]["loa_high"] == pytest.approx(pct.mean() + 1.96 * pct.std(ddof=1))


def test_both_zero_volumes_are_left_out_and_ccc_by_hand():
    ba = bland_altman([0.0, 5.0, 7.0], [0.0, 5.0, 6.0])
    assert ba["n"] == 2 and ba["ml"]["bias"] == pytest.approx(0.5)
    assert lins_ccc([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert lins_ccc([1, 2, 3], [2, 3, 4]) == pytest.approx(4 / 7)  # a pure shift lowers it
    assert lins_ccc([1, 2, 3], [2, 4, 6]) < 1  # so does a scale change (Pearson r is 1)
    assert math.isnan(lins_ccc([1], [1]))


def test_evaluate_writes_bland_altman_of_constructed_volumes(tmp_path):
    """Prediction cubes one slab of 1 voxel larger along axis 0: +side^2 voxels each."""
    sides = [6, 8, 10, 12]
    voxel_ml = math.prod(SPACING) / 1000
    for i, side in enumerate(sides):
        write(tmp_path / "ref", f"c{i}", cube(side))
        pred = cube(side)
        pred[4 + side, 4:4 + side, 4:4 + side] = 1
        write(tmp_path / "pred", f"c{i}", pred)
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                 "-o", str(out), "--workers", "1"]) == 0
    with open(out / "volume_agreement.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    diff = np.array([s**2 * voxel_ml for s in sides])
    ref = np.array([s**3 * voxel_ml for s in sides])
    assert float(row["bias_ml"]) == pytest.approx(diff.mean())
    assert float(row["loa_low_ml"]) == pytest.approx(diff.mean() - 1.96 * diff.std(ddof=1))
    assert float(row["loa_high_ml"]) == pytest.approx(diff.mean() + 1.96 * diff.std(ddof=1))
    pct = 100 * diff / (ref + diff / 2)
    assert float(row["bias_pct"]) == pytest.approx(pct.mean())
    html = (out / "report.html").read_text()
    assert "Bland-Altman: 1" in html and "+1.96 SD" in html
