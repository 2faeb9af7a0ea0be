"""Quality checks and training records on small volumes with known geometry (no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.io import read_image, read_label_map
from medseg.models.base import ModelInfo
from medseg.qc import QC, check_segmentation, training_record
from medseg.qc.checks import (
    absolute_channels,
    border_findings,
    empty_findings,
    extent_findings,
    intensity_findings,
    plausible_findings,
    volume_findings,
)
from medseg.qc.record import extent_mm
from medseg.volume import LabelMap, Volume, affine_from_geometry

NAMES = {0: "background", 1: "organ", 2: "spot"}
LPS = np.diag([-1.0, -1.0, 1.0])


def grid(shape, spacing=(2.0, 2.0, 4.0), direction=None, lps=False):
    return shape, affine_from_geometry(spacing, (10.0, -20.0, 5.0), direction, lps=lps)


def cube_case(shape=(32, 32, 16), spacing=(2.0, 2.0, 4.0), organ=(8, 24, 8, 24, 4, 12),
              spot=True, value=100.0, lps=False):
    """A label map with a box ``organ`` (class 1) and optionally a 2x2x2 spot (class 2), and
    an image: ``value`` inside the organ, ``value + 50`` in the spot, -1000 outside."""
    _, affine = grid(shape, spacing, lps=lps)
    lab = np.zeros(shape, np.uint8)
    x0, x1, y0, y1, z0, z1 = organ
    lab[x0:x1, y0:y1, z0:z1] = 1
    if spot:
        lab[14:16, 14:16, 6:8] = 2
    img = np.full(shape, -1000.0, np.float32)
    img[lab == 1] = value
    img[lab == 2] = value + 50
    return Volume.from_spatial(img, affine), LabelMap.from_spatial(lab, affine)


def test_record_holds_exact_volumes_presence_extent_and_intensity():
    a_img, a_lab = cube_case()                                   # organ 16*16*8 voxels of 16 mm3
    b_img, b_lab = cube_case(organ=(4, 28, 4, 28, 2, 14), spot=False, value=120.0, lps=True)
    rec = training_record([(a_img, a_lab), (b_img, b_lab)], NAMES)
    organ_a = (16 * 16 * 8 - 8) * 16 / 1000                      # the spot overwrites 8 voxels
    organ_b = 24 * 24 * 12 * 16 / 1000
    assert rec["cases"] == 2
    assert rec["classes"]["organ"] == {"min_ml": pytest.approx(organ_a),
                                       "max_ml": pytest.approx(organ_b),
                                       "present_fraction": 1.0}
    assert rec["classes"]["spot"] == {"min_ml": pytest.approx(0.128),
                                      "max_ml": pytest.approx(0.128), "present_fraction": 0.5}
    assert rec["extent_mm"] == {"min": [64.0, 64.0, 64.0], "max": [64.0, 64.0, 64.0]}
    fg = np.concatenate([a_img.data[a_lab.data > 0], b_img.data[b_lab.data > 0]]).astype(float)
    (stats,) = rec["intensity"]
    assert stats["min"] == 100.0 and stats["max"] == 150.0
    assert stats["mean"] == pytest.approx(fg.mean(), abs=1e-3)
    assert stats["std"] == pytest.approx(fg.std(), abs=1e-3)
    assert stats["p00_5"] == pytest.approx(np.percentile(fg, 0.5))
    assert stats["p99_5"] == pytest.approx(np.percentile(fg, 99.5))


def test_record_without_intensity_needs_no_images():
    _, lab = cube_case()
    rec = training_record([(None, lab)], NAMES, intensity=False)
    assert "intensity" not in rec and rec["cases"] == 1 and rec["classes"]["spot"]


def test_extent_is_measured_on_the_ras_canonical_axes():
    """A sagittal-first (ASL-like) grid: voxel axis 0 runs along S, so the canonical x extent
    comes from voxel axis 2."""
    direction = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], float)  # columns: S, A, R
    affine = affine_from_geometry((3.0, 2.0, 1.0), (0, 0, 0), direction)
    vol = Volume.from_spatial(np.zeros((10, 20, 50), np.int16), affine)
    assert extent_mm(vol) == [50.0, 40.0, 30.0]
    _, lps_affine = grid((10, 20, 30), (1.0, 2.0, 3.0), lps=True)
    assert extent_mm(Volume.from_spatial(np.zeros((10, 20, 30)), lps_affine)) == [10, 40, 90]


CLASSES = {"organ": {"min_ml": 1000.0, "max_ml": 2000.0, "present_fraction": 1.0},
           "spot": {"min_ml": 4.0, "max_ml": 12.0, "present_fraction": 1.0},
           "sometimes": {"min_ml": 300.0, "max_ml": 400.0, "present_fraction": 0.5}}


@pytest.mark.parametrize(("volumes", "expected"), [
    ({"organ": 1500.0, "spot": 8.0, "sometimes": 350.0}, []),
    ({"organ": 600.0, "spot": 0.0, "sometimes": 0.0}, []),        # wide margins; optional
    ({"organ": 0.0}, ["organ 0.0 mL: absent, but present in every training case "
                      "(trained range 1,000-2,000 mL)"]),
    ({"organ": 450.0}, ["organ 450.0 mL, trained range 1,000-2,000 mL"]),
    ({"organ": 4100.0}, ["organ 4,100.0 mL, trained range 1,000-2,000 mL"]),
    ({"spot": 0.1}, []),                                          # small: no lower bound
    ({"spot": 30.0}, ["spot 30.0 mL, trained range 4.0-12.0 mL"]),
    ({"sometimes": 100.0}, ["sometimes 100.0 mL, trained range 300-400 mL"]),
    ({"unknown": 0.0}, []),
])
def test_volume_check(volumes, expected):
    assert [f.message for f in volume_findings(volumes, CLASSES)] == expected


def test_absent_class_without_volume_range_is_flagged_from_presence_alone():
    found = volume_findings({"organ": 0.0}, {"organ": {"present_fraction": 1.0}})
    assert [f.message for f in found] == ["organ 0.0 mL: absent, but present in every "
                                          "training case"]


INTENSITY = [{"min": 80.0, "max": 160.0, "mean": 110.0, "std": 10.0, "p00_5": 90.0,
              "p99_5": 150.0}]


@pytest.mark.parametrize(("value", "flagged"), [(100.0, False), (120.0, False), (500.0, True),
                                            (-300.0, True)])
def test_intensity_check(value, flagged):
    img, lab = cube_case(value=value)
    found = intensity_findings(img, lab.data > 0, INTENSITY)
    assert bool(found) is flagged
    if flagged:
        assert found[0].message.startswith("input intensity outside anything seen in training")


@pytest.mark.parametrize(("value", "flagged"), [(100.0, False), (5000.0, False), (-300.0, True)])
def test_intensity_of_mr_channels_is_compared_by_sign_only(value, flagged):
    """Scanner units differ (a rescaled MR is fine); a negative foreground where training had
    none (a CT given to an MR model) is not."""
    img, lab = cube_case(value=value)
    found = intensity_findings(img, lab.data > 0, INTENSITY, absolute=[False])
    assert bool(found) is flagged
    if flagged:
        assert "partly negative" in found[0].message


@pytest.mark.parametrize(("kw", "expected"), [
    ({"modality": "CT"}, [True]), ({"modality": "MR"}, [False]), ({}, [False]),
    ({"in_channels": 2, "channel_names": ("CT", "PET")}, [True, False]),
    ({"in_channels": 2, "modality": "CT"}, [True, True]),
])
def test_absolute_channels_from_channel_names_or_modality(kw, expected):
    assert absolute_channels(info("m", {"background": 0}, None, **kw)) == expected


def test_intensity_check_skips_tiny_foreground_and_channel_mismatch():
    img, lab = cube_case(value=5000.0)
    assert intensity_findings(img, lab.data == 2, INTENSITY) == []        # 8 voxels
    assert intensity_findings(img, lab.data > 0, INTENSITY * 2) == []     # 2 channels recorded


@pytest.mark.parametrize(("shape", "flagged"), [((32, 32, 16), False), ((16, 16, 16), False),
                                            ((100, 32, 16), True), ((32, 32, 4), True)])
def test_extent_check(shape, flagged):
    img, _ = cube_case(shape=shape, organ=(1, 3, 1, 3, 1, 3))   # 64 x 64 x 64 mm at (32,32,16)
    found = extent_findings(img, {"min": [60.0, 60.0, 60.0], "max": [70.0, 70.0, 70.0]})
    assert bool(found) is flagged
    assert extent_findings(img, {"min": [60.0, 60.0], "max": [70.0, 70.0]}) == []  # 2D record


def test_border_check_flags_cut_or_outside_labels_not_crossing_ones():
    affine = grid((40, 40, 40))[1]
    lab = np.zeros((40, 40, 40), np.uint8)
    lab[15:25, 15:25, 15:25] = 1                      # well inside
    lab[18:22, 18:22, :] = 2                          # a tube crossing the z range (aorta)
    lab[:, 0:3, :] = 3                                # a slab along one face
    names = {0: "background", 1: "inner", 2: "tube", 3: "slab"}
    found = border_findings(LabelMap.from_spatial(lab, affine), names)
    assert [f.class_name for f in found] == ["slab"]
    assert "40% of slab" in found[0].message          # (1600 + 2 * 156) / 4800


def test_border_check_ignores_the_end_slices_of_a_thin_stack():
    lab = np.zeros((40, 40, 5), np.uint8)
    lab[10:30, 10:30, :] = 1                           # 40 % of it in the two end slices
    found = border_findings(LabelMap.from_spatial(lab, grid((40, 40, 5))[1]), NAMES)
    assert found == []


def test_empty_check_flags_foreground_on_the_images_minimum():
    img, lab = cube_case(spot=False)                   # organ at 100, air at -1000 (the minimum)
    assert empty_findings(img, lab) == []
    grown = lab.array[0].copy()
    grown[4:28, 4:28, 2:14] = 1                        # the organ plus a shell of air around it
    found = empty_findings(img, LabelMap.from_spatial(grown, lab.affine))
    share = (grown > 0).sum() - (lab.array[0] > 0).sum()
    assert [f.check for f in found] == ["empty"]
    assert f"{share / (grown > 0).sum():.0%} of the foreground ({share:,} voxels)" in \
        found[0].message and "-1,000" in found[0].message
    # a sliver along the organ's edge (under 5 % of the foreground) is not flagged
    edge = lab.array[0].copy()
    edge[7, 8:24, 4:8] = 1                             # 64 voxels, 3 %
    assert empty_findings(img, LabelMap.from_spatial(edge, lab.affine)) == []


def test_empty_check_on_a_real_skull_stripped_head():
    from scipy import ndimage

    root = Path(__file__).resolve().parents[1] / "sample_data" / "real_mri"
    head = read_image(root / "itk_t1_head.nii.gz")
    outline = read_label_map(root / "itk_t1_brain_mask.nii.gz")
    mask = outline.data > 0
    stripped = head.with_array(np.where(mask[None], head.array, 0).astype(np.float32))
    assert empty_findings(stripped, outline) == []     # the true brain: nothing on the zeros
    assert empty_findings(head, outline) == []         # and the unstripped head has no zeros there
    dilated = ndimage.binary_dilation(mask, iterations=4).astype(np.uint8)
    found = empty_findings(stripped, LabelMap.from_spatial(dilated, outline.affine))
    assert found and found[0].check == "empty"          # 8-12 mm of air labelled as brain


def test_plausible_ranges_are_checked_without_margin():
    volumes = {"organ": 100.0, "spot": 5.0}
    assert plausible_findings(volumes, {"all": [50, 105], "organ": [90, 110]}) == []
    found = plausible_findings(volumes, {"all": [50, 104], "organ": [101, 300], "gone": [1, 2]})
    assert [(f.check, f.class_name) for f in found] == [("plausible", None),
                                                         ("plausible", "organ")]
    assert found[0].message == "organ+spot 105.0 mL, outside the plausible 50.0-104 mL the " \
                               "model declares"


def test_plausible_brain_volume_flags_a_head_labelled_as_brain():
    """The real head's brain outline is plausible; the outline grown over skull and scalp
    (what a model that labels the head as tissue returns) is not."""
    from scipy import ndimage

    root = Path(__file__).resolve().parents[1] / "sample_data" / "real_mri"
    head = read_image(root / "itk_t1_head.nii.gz")
    outline = read_label_map(root / "itk_t1_brain_mask.nii.gz")
    names = {0: "background", 1: "brain"}
    model = info("brain", {"background": 0, "brain": 1}, {"plausible_ml": {"all": [900, 2300]}})
    qc = check_segmentation(outline, names, head, [model])
    assert qc.status == "ok" and "plausible" in qc.checked
    grown = ndimage.binary_dilation(outline.data > 0, iterations=6).astype(np.uint8)
    qc = check_segmentation(LabelMap.from_spatial(grown, outline.affine), names, head, [model])
    assert [f.check for f in qc.findings] == ["plausible"], qc.reasons


def info(name, labels, record, **kw):
    return ModelInfo(name=name, format="medseg", labels=labels, training_record=record, **kw)


def test_no_record_runs_the_border_check_only():
    img, lab = cube_case()
    qc = check_segmentation(lab, NAMES, img, [info("m", {v: k for k, v in NAMES.items()},
                                                   None)])
    assert qc == QC("ok", (), ("border", "empty"))
    assert qc.summary() == "ok (border and empty input only: the model records no training data)"


def test_malformed_record_is_a_warning_not_a_crash():
    img, lab = cube_case()
    record = {"classes": {"organ": {"min_ml": "lots", "max_ml": 2.0}}, "extent_mm": {"min": 5}}
    qc = check_segmentation(lab, NAMES, img, [info("m", {v: k for k, v in NAMES.items()},
                                                   record)])
    assert qc.status == "warn"
    assert qc.reasons == ["training record of m is malformed: volume not checked",
                          "training record of m is malformed: extent not checked"]


def test_merged_models_are_each_judged_on_their_own_classes():
    """Model A segments 'organ' (its record fits), model B 'spot' (its record says the spot is
    far larger): only B's class is flagged, and A's record is never applied to 'spot'."""
    img, lab = cube_case()
    a = info("A", {"background": 0, "organ": 1},
             {"classes": {"organ": {"min_ml": 30.0, "max_ml": 35.0, "present_fraction": 1},
                          "spot": {"min_ml": 500.0, "max_ml": 600.0, "present_fraction": 1}},
              "intensity": [{"min": 90, "max": 110, "p00_5": 95, "p99_5": 105}]})
    b = info("B", {"background": 0, "spot": 1},
             {"classes": {"spot": {"min_ml": 100.0, "max_ml": 200.0, "present_fraction": 1}},
              "intensity": [{"min": 900, "max": 1100, "p00_5": 950, "p99_5": 1050}]})
    qc = check_segmentation(lab, NAMES, img, [a, b])
    assert [(f.check, f.class_name) for f in qc.findings] == [("volume", "spot")]
    assert qc.reasons == ["spot 0.1 mL, trained range 100-200 mL"]
    # B's intensity: 8 voxels, skipped
    assert qc.checked == ("volume", "intensity", "border", "empty")


def test_qc_round_trips_through_json_and_lists_reasons_per_class():
    img, lab = cube_case(value=900.0)
    record = {"classes": {"organ": {"min_ml": 100.0, "max_ml": 200.0, "present_fraction": 1}},
              "intensity": INTENSITY, "extent_mm": {"min": [64] * 3, "max": [64] * 3}}
    qc = check_segmentation(lab, NAMES, img, [info("m", {v: k for k, v in NAMES.items()},
                                                   record, modality="CT")])
    assert qc.status == "warn" and len(qc.reasons) == 2
    assert QC.from_dict(qc.to_dict()) == qc
    assert qc.reasons_for("organ")[0] == "organ 32.6 mL, trained range 100-200 mL"
    assert qc.reasons_for("spot") == [r for r in qc.reasons if r.startswith("input intensity")]
    assert qc.summary() == "warn: " + "; ".join(qc.reasons)
