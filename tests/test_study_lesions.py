"""Lesion-wise detection on a cohort with known lesions, against an independent
implementation (SimpleITK's connected components and a plain-Python matcher) and against the
counts the cohort was built with; the detection section, CSV, criteria and FROC."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from medseg.cli import main
from medseg.evaluation.lesions import LesionRule, froc, match_lesions
from tests.study_cohorts import SPACING, write

SHAPE = (40, 40, 12)
#: lesion corners (x, y, z) and side; every lesion is a cube, well apart from the others
LESIONS = [((3, 3, 3), 4), ((20, 4, 3), 3), ((5, 25, 4), 5), ((28, 28, 3), 4)]


def _cube(arr, corner, side, shift=0):
    x, y, z = corner
    arr[x + shift:x + shift + side, y:y + side, z:z + side] = 1


def _case(i):
    """Reference: lesions 0..(1 + i % 3); prediction: lesion 0 exact, lesion 1 shifted by 1
    voxel (IoU > 0.1), lesion 2 (when present) missed, plus one FP blob on even cases."""
    ref = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    n_ref = 2 + i % 3
    for j, (corner, side) in enumerate(LESIONS[:n_ref]):
        _cube(ref, corner, side)
        if j == 0:
            _cube(pred, corner, side)
        elif j == 1:
            _cube(pred, corner, side, shift=1)
        elif j == 3:
            _cube(pred, corner, side, shift=3)  # IoU 1/7 > 0.1: matched
    if i % 2 == 0:
        pred[34:36, 10:12, 8:10] = 1  # false positive, 8 voxels
    return pred, ref


def _sitk_components(mask):
    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    lab = sitk.ConnectedComponent(img, True)  # fully connected
    return sitk.GetArrayFromImage(lab)


def _independent(pred, ref, threshold=0.1):
    """Greedy IoU matching written out plainly on SimpleITK's components."""
    pl, rl = _sitk_components(pred), _sitk_components(ref)
    p_ids = [int(v) for v in np.unique(pl) if v]
    r_ids = [int(v) for v in np.unique(rl) if v]
    scores = []
    for r in r_ids:
        for p in p_ids:
            inter = int(np.sum((rl == r) & (pl == p)))
            union = int(np.sum((rl == r) | (pl == p)))
            if inter and inter / union > threshold:
                scores.append((inter / union, r, p))
    scores.sort(reverse=True)
    used_r, used_p = set(), set()
    for _, r, p in scores:
        if r not in used_r and p not in used_p:
            used_r.add(r)
            used_p.add(p)
    dice_sum, fp_untouched = 0.0, 0
    for p in p_ids:
        if not np.any((pl == p) & (rl > 0)):
            fp_untouched += 1
    for r in r_ids:
        touching = [p for p in p_ids if np.any((pl == p) & (rl == r))]
        if touching:
            u = np.isin(pl, touching)
            dice_sum += 2 * np.sum(u & (rl == r)) / (np.sum(u) + np.sum(rl == r))
    return {"lesion_n_ref": len(r_ids), "lesion_n_pred": len(p_ids), "lesion_tp": len(used_r),
            "lesion_fn": len(r_ids) - len(used_r), "lesion_fp": len(p_ids) - len(used_p),
            "lesion_dice": dice_sum / (len(r_ids) + fp_untouched)}


@pytest.mark.parametrize("i", range(6))
def test_matching_agrees_with_an_independent_implementation(i):
    pred, ref = _case(i)
    ours = match_lesions(pred.astype(bool), ref.astype(bool), SPACING)
    ref_result = _independent(pred, ref)
    for key, value in ref_result.items():
        assert ours[key] == pytest.approx(value), key
    n_ref = 2 + i % 3
    expected_tp = 2 + (n_ref == 4)
    assert (ours["lesion_n_ref"], ours["lesion_tp"]) == (n_ref, expected_tp)
    assert ours["lesion_fp"] == (i % 2 == 0)


def test_centre_rule_and_threshold():
    pred, ref = _case(2)  # 4 lesions; lesion 3 predicted 3 voxels off (IoU 1/7)
    strict = match_lesions(pred.astype(bool), ref.astype(bool), SPACING,
                           LesionRule(threshold=0.2))
    assert strict["lesion_tp"] == 2
    near = match_lesions(pred.astype(bool), ref.astype(bool), SPACING,
                         LesionRule(criterion="centre", max_distance_mm=3.0))
    assert near["lesion_tp"] == 3  # centres 1 and 3 mm apart (x spacing 1 mm)
    assert match_lesions(pred.astype(bool), ref.astype(bool), SPACING,
                         LesionRule(criterion="centre", max_distance_mm=2.0))["lesion_tp"] == 2


def test_froc_by_hand():
    cases = [{"lesion_n_ref": 2, "pred_sizes": [10, 3], "pred_matched": [True, False]},
             {"lesion_n_ref": 2, "pred_sizes": [5, 8], "pred_matched": [False, True]}]
    out = froc(cases)
    points = {p["min_size"]: (p["sensitivity"], p["fp_per_case"]) for p in out["points"]}
    assert points[3.0] == (0.5, 1.0)  # everything kept: 2 of 4 found, 2 FP in 2 cases
    assert points[5.0] == (0.5, 0.5)
    assert points[8.0] == (0.5, 0.0)  # sizes >= 8: both hits kept, no FP
    assert points[10.0] == (0.25, 0.0)
    assert out["sensitivity_at"] == [0.5] * 7 and out["score"] == pytest.approx(0.5)


def test_detection_section_end_to_end(tmp_path, capsys):
    for i in range(10):
        pred, ref = _case(i)
        write(tmp_path / "pred", f"c{i}", pred)
        write(tmp_path / "ref", f"c{i}", ref)
    crit = tmp_path / "c.json"
    crit.write_text(json.dumps([{"id": "SENS", "class": "lesion", "metric": "lesion_sensitivity",
                                 "statistic": "mean", "op": ">=", "threshold": 0.6}]))
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                 "--labels", "lesion=1", "-o", str(out), "--workers", "1",
                 "--criteria", str(crit)]) == 0
    stdout = capsys.readouterr().out
    per_case = [_independent(*_case(i)) for i in range(10)]
    n_ref = sum(c["lesion_n_ref"] for c in per_case)
    tp = sum(c["lesion_tp"] for c in per_case)
    doc = json.loads((out / "summary.json").read_text())
    det = doc["detection"]["classes"]["lesion"]
    assert (det["n_ref_lesions"], det["tp"]) == (n_ref, tp)
    assert det["sensitivity"] == pytest.approx(tp / n_ref)
    assert det["fp_per_case"] == pytest.approx(0.5)
    assert det["sensitivity_ci_low"] < det["sensitivity"] < det["sensitivity_ci_high"]
    assert det["lesion_dice"] == pytest.approx(np.mean([c["lesion_dice"] for c in per_case]))
    with open(out / "detection.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["sensitivity"]) == pytest.approx(tp / n_ref)
    with open(out / "per_case.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["class"] == "lesion"]
    assert [int(r["lesion_tp"]) for r in rows] == [c["lesion_tp"] for c in per_case]
    assert "Lesion detection" in (out / "report.html").read_text()
    assert "lesions: sensitivity" in stdout
    result = json.loads((out / "criteria.json").read_text())["criteria"][0]
    mean_sens = np.mean([c["lesion_tp"] / c["lesion_n_ref"] for c in per_case])
    assert result["value"] == pytest.approx(mean_sens) and result["result"] == "PASS"


def test_lesion_analysis_can_be_switched_off(tmp_path, capsys):
    for i in range(2):
        pred, ref = _case(i)
        write(tmp_path / "pred", f"c{i}", pred)
        write(tmp_path / "ref", f"c{i}", ref)
    out = tmp_path / "out"
    main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
          "-o", str(out), "--workers", "1", "--lesion-classes", "none"])
    capsys.readouterr()
    doc = json.loads((out / "summary.json").read_text())
    assert "detection" not in doc and not (out / "detection.csv").exists()
    assert "lesion_tp" not in doc["classes"]["1"]["metrics"]
