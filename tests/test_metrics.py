"""medseg.evaluation.metrics against MONAI, an independent EDT implementation, analytic shapes,
and the
empty-mask policy.

Tolerances: overlap metrics are ratios of the same integer counts, so they agree with MONAI to
float32 rounding (1e-6). MONAI returns distances as float32 (relative error ~6e-8, i.e. < 1e-5 mm
for distances under 100 mm), so the distance metrics are compared to 1e-4 (mm, or fraction for
NSD): the definitions are identical, only the float width differs.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_dice,
    compute_hausdorff_distance,
    compute_iou,
    compute_surface_dice,
)
from scipy import ndimage as ndi

from medseg.errors import GeometryError
from medseg.evaluation.metrics import (
    CLASS_METRICS,
    average_symmetric_surface_distance,
    border,
    class_metrics,
    dice,
    hausdorff_distance,
    iou,
    normalized_surface_dice,
    semantic_metrics,
    surface_distances,
    tolerance_for,
)


def smooth_masks(shape, seed, sigma=2.5):
    """A realistic pair: a thresholded smoothed random field and a perturbed copy."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=shape), sigma)
    ref = field > 0.3 * field.std()
    noisy = ndi.gaussian_filter(field + 0.4 * field.std() * rng.normal(size=shape), 1.0)
    pred = noisy > 0.2 * field.std()
    return pred, ref


def noise_masks(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.random(shape) < 0.3, rng.random(shape) < 0.35


CASES = [
    pytest.param(smooth_masks, (36, 40, 24), (0.7, 1.1, 2.5), id="smooth-3d-aniso"),
    pytest.param(noise_masks, (20, 18, 12), (0.5, 0.9, 3.0), id="noise-3d-aniso"),
    pytest.param(smooth_masks, (64, 50), (0.4, 1.3), id="smooth-2d-aniso"),
    pytest.param(noise_masks, (30, 25), (1.0, 1.0), id="noise-2d"),
]


def _monai(pred, ref):
    def t(m):
        return torch.as_tensor(np.stack([~m, m])[None].astype(np.float32))

    return t(pred), t(ref)


@pytest.mark.parametrize(("make", "shape", "spacing"), CASES)
def test_matches_monai(make, shape, spacing):
    pred, ref = make(shape, seed=3)
    ours = class_metrics(pred, ref, spacing, tolerance=1.5)
    yp, yr = _monai(pred, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {
            "dice": compute_dice(yp, yr, include_background=False),
            "iou": compute_iou(yp, yr, include_background=False),
            "hd95": compute_hausdorff_distance(yp, yr, percentile=95, spacing=spacing),
            "hd": compute_hausdorff_distance(yp, yr, spacing=spacing),
            "assd": compute_average_surface_distance(yp, yr, symmetric=True, spacing=spacing),
            "nsd": compute_surface_dice(yp, yr, class_thresholds=[1.5], spacing=spacing),
        }
    for name, value in expected.items():
        tol = 1e-6 if name in ("dice", "iou") else 1e-4
        assert ours[name] == pytest.approx(float(value.item()), abs=tol), name
    assert ours["status"] == "ok"


@pytest.mark.parametrize(("make", "shape", "spacing"), CASES)
def test_surface_distances_match_a_dense_edt(make, shape, spacing):
    """Independent implementation: scipy's EDT of the complement of each border."""
    pred, ref = make(shape, seed=5)
    bp, br = border(pred), border(ref)
    # border definition: mask minus face-connected erosion, outside = background
    assert np.array_equal(bp, pred ^ ndi.binary_erosion(pred))
    d_pr, d_rp = surface_distances(pred, ref, spacing)
    edt_r = ndi.distance_transform_edt(~br, sampling=spacing)
    edt_p = ndi.distance_transform_edt(~bp, sampling=spacing)
    np.testing.assert_allclose(d_pr, edt_r[bp], atol=1e-9)
    np.testing.assert_allclose(d_rp, edt_p[br], atol=1e-9)


@pytest.mark.parametrize(("make", "shape", "spacing"), CASES)
def test_overlap_and_volumes_from_counts(make, shape, spacing):
    pred, ref = make(shape, seed=7)
    tp = np.sum(pred & ref)
    fp = np.sum(pred & ~ref)
    fn = np.sum(~pred & ref)
    tn = np.sum(~pred & ~ref)
    m = class_metrics(pred, ref, spacing)
    assert m["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert m["precision"] == pytest.approx(tp / (tp + fp))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    voxel_ml = math.prod(spacing) / 1000
    assert m["ref_volume_ml"] == pytest.approx(ref.sum() * voxel_ml)
    assert m["pred_volume_ml"] == pytest.approx(pred.sum() * voxel_ml)
    assert m["abs_volume_diff_ml"] == pytest.approx(abs(pred.sum() - ref.sum()) * voxel_ml)
    assert m["rel_volume_diff_pct"] == pytest.approx(100 * (pred.sum() - ref.sum()) / ref.sum())
    # single-metric helpers use the same definitions
    assert dice(pred, ref) == m["dice"]
    assert iou(pred, ref) == m["iou"]
    assert hausdorff_distance(pred, ref, spacing, percentile=95) == pytest.approx(m["hd95"])
    assert hausdorff_distance(pred, ref, spacing) == pytest.approx(m["hd"])
    assert average_symmetric_surface_distance(pred, ref, spacing) == pytest.approx(m["assd"])


def test_cropping_keeps_true_negatives():
    pred, ref = smooth_masks((30, 30, 20), seed=1)
    big_p = np.zeros((60, 60, 40), bool)
    big_r = np.zeros((60, 60, 40), bool)
    big_p[10:40, 5:35, 3:23] = pred
    big_r[10:40, 5:35, 3:23] = ref
    small = class_metrics(pred, ref, (1, 1, 1), n_voxels=big_p.size)
    big = class_metrics(big_p, big_r, (1, 1, 1))
    for k in CLASS_METRICS:
        assert big[k] == pytest.approx(small[k]), k


def ball(shape, centre_mm, radius, spacing):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum((g * s - c) ** 2 for g, s, c in zip(grids, spacing, centre_mm, strict=True)) \
        <= radius**2


SPHERE_SPACING = (0.6, 0.7, 1.2)
SHAPE = (60, 56, 34)
CENTRE = (18.0, 19.0, 20.0)


@pytest.mark.parametrize(("r_pred", "r_ref"), [(8.0, 11.0), (14.0, 10.0)])
def test_concentric_spheres(r_pred, r_ref):
    """Every surface point is |r1 - r2| from the other surface.

    Border voxel centres lie inside the true surface by less than one voxel step, so a single
    distance (HD, HD95) can be off by at most the largest spacing; averages (ASSD) of the two
    equally biased shells are within half of it. Volumes within 1% of 4/3 pi r^3.
    """
    pred = ball(SHAPE, CENTRE, r_pred, SPHERE_SPACING)
    ref = ball(SHAPE, CENTRE, r_ref, SPHERE_SPACING)
    m = class_metrics(pred, ref, SPHERE_SPACING, tolerance=abs(r_pred - r_ref) + 1.5)
    d = abs(r_pred - r_ref)
    smax = max(SPHERE_SPACING)
    assert abs(m["hd"] - d) <= smax
    assert abs(m["hd95"] - d) <= smax
    assert abs(m["assd"] - d) <= smax / 2
    assert m["nsd"] == 1.0
    assert class_metrics(pred, ref, SPHERE_SPACING, tolerance=d - smax - 0.01)["nsd"] == 0.0
    assert m["ref_volume_ml"] == pytest.approx(4 / 3 * math.pi * r_ref**3 / 1000, rel=0.01)
    assert m["pred_volume_ml"] == pytest.approx(4 / 3 * math.pi * r_pred**3 / 1000, rel=0.01)
    small, large = min(r_pred, r_ref), max(r_pred, r_ref)
    assert m["dice"] == pytest.approx(2 * small**3 / (small**3 + large**3), abs=0.02)


def test_offset_spheres():
    """Equal radii r shifted by d: HD = d; Dice = overlap of two balls / ball volume."""
    r, d = 10.0, 5.0
    pred = ball(SHAPE, CENTRE, r, SPHERE_SPACING)
    ref = ball(SHAPE, (CENTRE[0] + d, *CENTRE[1:]), r, SPHERE_SPACING)
    m = class_metrics(pred, ref, SPHERE_SPACING)
    assert abs(m["hd"] - d) <= max(SPHERE_SPACING)
    lens = math.pi * (4 * r + d) * (2 * r - d) ** 2 / 12
    assert m["dice"] == pytest.approx(lens / (4 / 3 * math.pi * r**3), abs=0.01)


# ---- empty-mask policy ------------------------------------------------------------------------
EMPTY = np.zeros((8, 9, 7), bool)
FULL = np.zeros((8, 9, 7), bool)
FULL[2:6, 3:7, 2:5] = True
NAN = float("nan")


def _check(m, expected):
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(m[key]), key
        else:
            assert m[key] == value, key


@pytest.mark.parametrize("empty_score", [NAN, 1.0])
def test_both_empty(empty_score):
    m = class_metrics(EMPTY, EMPTY, (1, 1, 2), empty_score=empty_score)
    assert m["status"] == "both_empty"
    _check(m, {"dice": empty_score, "iou": empty_score, "nsd": empty_score,
               "hd95": NAN, "hd": NAN, "assd": NAN, "sensitivity": NAN, "precision": NAN,
               "specificity": 1.0, "ref_volume_ml": 0.0, "pred_volume_ml": 0.0,
               "abs_volume_diff_ml": 0.0, "rel_volume_diff_pct": NAN})
    assert math.isnan(dice(EMPTY, EMPTY)) and dice(EMPTY, EMPTY, empty_score=1) == 1
    assert normalized_surface_dice(EMPTY, EMPTY, empty_score=1) == 1
    assert math.isnan(hausdorff_distance(EMPTY, EMPTY))


@pytest.mark.parametrize("empty_score", [NAN, 1.0])
def test_prediction_empty(empty_score):
    m = class_metrics(EMPTY, FULL, (1, 1, 2), empty_score=empty_score)
    assert m["status"] == "pred_empty"
    _check(m, {"dice": 0.0, "iou": 0.0, "nsd": 0.0, "hd95": NAN, "hd": NAN, "assd": NAN,
               "sensitivity": 0.0, "precision": NAN, "specificity": 1.0,
               "pred_volume_ml": 0.0, "rel_volume_diff_pct": -100.0})
    assert math.isnan(average_symmetric_surface_distance(EMPTY, FULL, (1, 1, 2)))


@pytest.mark.parametrize("empty_score", [NAN, 1.0])
def test_reference_empty(empty_score):
    m = class_metrics(FULL, EMPTY, (1, 1, 2), empty_score=empty_score)
    assert m["status"] == "ref_empty"
    _check(m, {"dice": 0.0, "iou": 0.0, "nsd": 0.0, "hd95": NAN, "hd": NAN, "assd": NAN,
               "sensitivity": NAN, "precision": 0.0, "ref_volume_ml": 0.0,
               "rel_volume_diff_pct": NAN})
    assert m["pred_volume_ml"] == pytest.approx(FULL.sum() * 2 / 1000)
    assert m["specificity"] < 1.0


def test_identical_masks_are_perfect():
    m = class_metrics(FULL, FULL, (0.5, 0.5, 3))
    _check(m, {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "hd": 0.0, "assd": 0.0, "nsd": 1.0,
               "abs_volume_diff_ml": 0.0, "rel_volume_diff_pct": 0.0})


# ---- semantic view and argument checks --------------------------------------------------------
def test_semantic_metrics_against_confusion_matrix():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, size=(20, 21, 5))
    pred = np.where(rng.random(ref.shape) < 0.8, ref, rng.integers(0, 4, size=ref.shape))
    pred[pred == 3] = 0  # class 3 only in the reference
    cm = np.zeros((4, 4), int)
    np.add.at(cm, (ref.ravel(), pred.ravel()), 1)
    ious = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    m = semantic_metrics(pred, ref, [1, 2, 3])
    assert m["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert m["miou"] == pytest.approx(ious.mean())
    # a class in neither map is left out of the mean
    assert semantic_metrics(pred, ref, [1, 2, 3, 9])["miou"] == pytest.approx(ious.mean())


def test_bad_arguments():
    with pytest.raises(GeometryError, match="differs"):
        class_metrics(FULL, FULL[:4], (1, 1, 1))
    with pytest.raises(GeometryError, match="spacing"):
        class_metrics(FULL, FULL, (1, 1))
    with pytest.raises(GeometryError, match="2D or 3D"):
        class_metrics(np.zeros(5, bool), np.zeros(5, bool))


def test_tolerance_lookup():
    assert tolerance_for(2.5, 1, "liver") == 2.5
    per = {"liver": 2.0, 3: 4.0, "default": 1.5}
    assert tolerance_for(per, 1, "liver") == 2.0
    assert tolerance_for(per, 3, "kidney") == 4.0
    assert tolerance_for(per, 2, "spleen") == 1.5
    assert tolerance_for({"liver": 2.0}, 2, "spleen", (0.8, 0.8, 3.0)) == 3.0  # voxel size


SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "Dataset002_AbdomenCT" / "labelsTr"


@pytest.mark.skipif(not (SAMPLE / "abdomen_001.nii.gz").exists(), reason="no sample data")
def test_matches_monai_on_real_organ_masks():
    """Two different subjects' organ labels (4x4x5 mm), one resampled onto the other's grid."""
    from medseg.evaluation.pairs import resample_nearest
    from medseg.io import read_label_map

    ref = read_label_map(SAMPLE / "abdomen_000.nii.gz")
    pred = resample_nearest(read_label_map(SAMPLE / "abdomen_001.nii.gz"), ref)
    spacing = ref.spacing
    for value in (1, 2, 7):
        p, r = pred.data == value, ref.data == value
        ours = class_metrics(p, r, spacing, tolerance=5.0)
        yp, yr = _monai(p, r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert ours["dice"] == pytest.approx(
                compute_dice(yp, yr, include_background=False).item(), abs=1e-6)
            assert ours["hd95"] == pytest.approx(
                compute_hausdorff_distance(yp, yr, percentile=95, spacing=spacing).item(),
                abs=1e-4)
            assert ours["assd"] == pytest.approx(compute_average_surface_distance(
                yp, yr, symmetric=True, spacing=spacing).item(), abs=1e-4)
            assert ours["nsd"] == pytest.approx(compute_surface_dice(
                yp, yr, class_thresholds=[5.0], spacing=spacing).item(), abs=1e-4)


# ---- NSD on the tolerance (issue 13 regression) -------------------------------------------------
def _shifted_cube(shift=5, size=20, n=40):
    pred = np.zeros((n, n, n), bool)
    ref = np.zeros((n, n, n), bool)
    ref[8:8 + size, 8:8 + size, 8:8 + size] = True
    pred[8 + shift:8 + shift + size, 8:8 + size, 8:8 + size] = True
    return pred, ref


def test_nsd_counts_points_exactly_on_a_float32_tolerance():
    """20^3 cube on a 0.8 mm grid shifted 5 voxels, tolerance 4 mm: every border point is
    within 4 mm (MONAI gives 1.0); the float32 spacing makes the distance 4.00000006 mm."""
    pred, ref = _shifted_cube()
    spacing32 = tuple(float(s) for s in np.asarray([0.8, 0.8, 0.8], np.float32))
    assert 5 * spacing32[0] > 4.0  # the stored spacing really puts the face beyond 4 mm
    assert class_metrics(pred, ref, spacing32, tolerance=4.0)["nsd"] == 1.0
    assert class_metrics(pred, ref, (0.8, 0.8, 0.8), tolerance=4.0)["nsd"] == 1.0
    # a tolerance a little below the shift still drops the far faces
    assert class_metrics(pred, ref, spacing32, tolerance=3.99)["nsd"] < 0.9


def test_nsd_is_the_same_for_diagonal_and_rotated_affines():
    """The same masks on a diagonal and a rotated affine (spacings read back from the affine,
    as Volume.spacing does) give the same NSD at a tolerance equal to the shift."""
    from medseg.volume import LabelMap, affine_from_geometry

    pred, ref = _shifted_cube()
    angle = np.deg2rad(30.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                    [0, 0, 1]])
    diagonal = affine_from_geometry((0.8, 0.8, 0.8), (0.0, 0.0, 0.0))
    rotated = diagonal.copy()
    rotated[:3, :3] = rot @ (np.eye(3) * np.float32(0.8))
    sp_diag = LabelMap(ref[None].astype(np.int16), diagonal).spacing
    sp_rot = LabelMap(ref[None].astype(np.int16), rotated).spacing
    assert sp_rot != sp_diag  # the rotation changes the spacing in the last bits
    nsd = [class_metrics(pred, ref, sp, tolerance=4.0)["nsd"] for sp in (sp_diag, sp_rot)]
    assert nsd == [1.0, 1.0]
