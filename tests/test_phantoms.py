"""The CT phantom generator: determinism, Hounsfield ranges, organ sizes and anatomy in RAS+."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.synth.phantoms import CT_LABELS, ct_case_affine, make_ct_case
from medseg.volume import LabelMap, Volume

SMALL = dict(shape=(64, 64, 40), spacing=(6.0, 6.0, 8.0))


@pytest.fixture(scope="module")
def case():
    return make_ct_case(7, **SMALL)


def centroid(labels: LabelMap, value: int) -> np.ndarray:
    return labels.world_coordinates(np.argwhere(labels.data == value)).mean(axis=0)


def test_same_seed_same_case_other_seed_differs(case):
    image, labels = case
    image2, labels2 = make_ct_case(7, **SMALL)
    np.testing.assert_array_equal(image.array, image2.array)
    np.testing.assert_array_equal(labels.array, labels2.array)
    np.testing.assert_array_equal(image.affine, image2.affine)
    image3, labels3 = make_ct_case(8, **SMALL)
    assert not np.array_equal(labels.array, labels3.array)
    assert not np.array_equal(image.array, image3.array)


def test_types_and_hounsfield_ranges(case):
    image, labels = case
    assert isinstance(image, Volume) and isinstance(labels, LabelMap)
    assert image.array.dtype == np.int16 and labels.array.dtype == np.uint8
    assert image.same_grid(labels)
    hu = image.data
    assert hu.min() >= -1024 and hu.max() <= 3071
    lab = labels.data
    # air outside the body, organs in soft-tissue range, bone bright (medians resist noise)
    assert np.median(hu[0, 0, :]) < -900
    for name, lo, hi in (("liver", 35, 85), ("spleen", 25, 75), ("kidney_right", 100, 200),
                         ("aorta", 110, 230), ("vertebra", 400, 800)):
        med = float(np.median(hu[lab == CT_LABELS[name]]))
        assert lo < med < hi, (name, med)


def test_every_label_present_and_small_class_rare(case):
    _, labels = case
    counts = labels.label_counts()
    assert set(counts) == set(CT_LABELS.values())
    total = labels.array.size
    assert counts[CT_LABELS["liver_lesion"]] / total < 0.001
    assert counts[CT_LABELS["liver"]] > 10 * counts[CT_LABELS["liver_lesion"]]
    assert counts[CT_LABELS["liver"]] > counts[CT_LABELS["spleen"]]


@pytest.mark.parametrize("orientation", ["LPS", "RAS"])
def test_anatomy_in_ras_world(orientation):
    image, labels = make_ct_case(3, **SMALL, orientation=orientation)
    assert image.orientation == orientation
    # RAS+: the patient's right is +x, anterior +y
    liver, spleen = centroid(labels, 1), centroid(labels, 2)
    right, left = centroid(labels, 3), centroid(labels, 4)
    spine, aorta = centroid(labels, 6), centroid(labels, 5)
    assert liver[0] > 20 and spleen[0] < -20
    assert right[0] > spine[0] > left[0]
    assert aorta[1] > spine[1] and aorta[0] < spine[0]  # anterior-left of the spine


def test_orientation_changes_storage_not_anatomy():
    _, lps = make_ct_case(5, **SMALL, orientation="LPS")
    _, ras = make_ct_case(5, **SMALL, orientation="RAS")
    np.testing.assert_array_equal(lps.data, ras.data[::-1, ::-1, :])
    np.testing.assert_allclose(lps.corner_coordinates().min(0), ras.corner_coordinates().min(0))


def test_affine_geometry():
    a = ct_case_affine((10, 20, 30), (2.0, 3.0, 4.0), "LPS", centre=(1.0, 2.0, 3.0))
    np.testing.assert_allclose(np.diag(a)[:3], [-2.0, -3.0, 4.0])
    centre_voxel = a @ np.array([4.5, 9.5, 14.5, 1.0])
    np.testing.assert_allclose(centre_voxel[:3], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="orientation"):
        ct_case_affine((4, 4, 4), (1, 1, 1), "XYZ")
