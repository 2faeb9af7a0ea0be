"""Issue 25: NSD's tolerance defaults to the voxel size (the largest spacing of each case) and
is stated in every output: per_case.csv, summary.json, report.html, stdout.

On 4 x 4 x 5 mm voxels a cube whose prediction is one voxel wider along the first axis has its
extra face 4 mm from the reference border: the old default of 1 mm gave that face no credit
(NSD well below 1 beside a Dice near 0.9, issue 25's puzzle); at the voxel size, 5 mm, NSD is 1.
``--tolerance 1`` still gives the old figure, and says so.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from medseg.cli import main
from medseg.evaluation.metrics import class_metrics, voxel_tolerance
from medseg.evaluation.pairs import evaluate_pair
from medseg.io import write_image
from medseg.volume import LabelMap, affine_from_geometry

SPACING = (4.0, 4.0, 5.0)
AFFINE = affine_from_geometry(SPACING, (0.0, 0.0, 0.0))


def _maps():
    ref = np.zeros((20, 20, 16), np.uint8)
    ref[5:13, 5:13, 4:12] = 1
    pred = ref.copy()
    pred[13, 5:13, 4:12] = 1  # one voxel (4 mm) wider along the first axis
    return LabelMap(pred[None], AFFINE), LabelMap(ref[None], AFFINE)


def _cohort(root):
    pred, ref = _maps()
    for role, vol in (("pred", pred), ("ref", ref)):
        (root / role).mkdir(parents=True)
        write_image(vol, root / role / "c0.nii.gz")
    return root


def test_voxel_tolerance_is_the_largest_spacing():
    assert voxel_tolerance(SPACING) == 5.0
    pred, ref = _maps()
    (row, _all) = evaluate_pair(pred, ref, {1: "organ"})
    assert row["nsd_tolerance_mm"] == 5.0 and row["nsd"] == pytest.approx(1.0)
    # the old default (1 mm) on these voxels: the extra face is 4 mm off, no credit
    old = class_metrics(pred.data == 1, ref.data == 1, SPACING, tolerance=1.0)["nsd"]
    assert old < 0.95 and row["dice"] == pytest.approx(16 / 17)


def test_evaluate_states_the_voxel_tolerance_everywhere(tmp_path, capsys):
    root = _cohort(tmp_path)
    out = tmp_path / "report"
    assert main(["evaluate", "--pred", str(root / "pred"), "--ref", str(root / "ref"), "-o",
                 str(out), "--labels", "organ=1", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "NSD tolerance: 5 mm (default: the voxel size" in printed
    with open(out / "per_case.csv", newline="") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["class"] == "organ"]
    assert float(row["nsd_tolerance_mm"]) == 5.0 and float(row["nsd"]) == pytest.approx(1.0)
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["nsd_tolerance_mm"] == {"organ": 5.0}
    assert settings["nsd_tolerance"].startswith("default: the voxel size")
    html = (out / "report.html").read_text()
    assert "nsd @ 5 mm" in html and "NSD tolerance: default: the voxel size" in html
    assert "within a tolerance of 5 mm" in html  # the methods paragraph


def test_given_tolerance_overrides_and_is_said(tmp_path, capsys):
    root = _cohort(tmp_path)
    out = tmp_path / "report"
    assert main(["evaluate", "--pred", str(root / "pred"), "--ref", str(root / "ref"), "-o",
                 str(out), "--labels", "organ=1", "--workers", "1", "--tolerance", "1"]) == 0
    assert "NSD tolerance: 1 mm (set by the user (--tolerance))" in capsys.readouterr().out
    with open(out / "per_case.csv", newline="") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["class"] == "organ"]
    assert float(row["nsd_tolerance_mm"]) == 1.0 and float(row["nsd"]) < 0.95
    assert "nsd @ 1 mm" in (out / "report.html").read_text()
