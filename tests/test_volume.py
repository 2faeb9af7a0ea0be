import numpy as np
import pytest

from medseg.errors import GeometryError
from medseg.volume import LabelMap, Volume, affine_from_geometry
from tests.conftest import oblique_affine


def test_geometry_is_derived_from_affine():
    aff = oblique_affine(spacing=(0.5, 0.75, 3.0), origin=(1.0, 2.0, 3.0))
    v = Volume.from_spatial(np.zeros((4, 5, 6), np.float32), aff)
    assert v.spacing == pytest.approx((0.5, 0.75, 3.0))
    assert v.origin == pytest.approx((1.0, 2.0, 3.0))
    np.testing.assert_allclose(v.direction.T @ v.direction, np.eye(3), atol=1e-12)
    # the last corner is origin + sum of scaled axes
    expected = aff[:3, :3] @ np.array([3, 4, 5]) + aff[:3, 3]
    np.testing.assert_allclose(v.corner_coordinates()[-1], expected)


def test_lps_geometry_converts_to_ras():
    aff = affine_from_geometry([1, 2, 3], [10, 20, 30], np.eye(3), lps=True)
    v = Volume.from_spatial(np.zeros((2, 2, 2)), aff)
    assert v.orientation == "LPS"
    assert v.origin == pytest.approx((-10, -20, 30))


def test_2d_volume_keeps_4x4_affine():
    v = Volume.from_spatial(np.zeros((4, 5)), affine_from_geometry([0.5, 0.25], [1, 2]))
    assert v.spatial_ndim == 2
    assert v.spacing == pytest.approx((0.5, 0.25))
    assert v.affine.shape == (4, 4)


@pytest.mark.parametrize(
    ("affine", "match"),
    [
        (np.full((4, 4), np.nan), "NaN"),
        (np.diag([1.0, 0.0, 1.0, 1.0]), "singular"),
        (np.eye(3), "4x4"),
    ],
)
def test_invalid_affines_are_rejected(affine, match):
    with pytest.raises(GeometryError, match=match):
        Volume.from_spatial(np.zeros((2, 2, 2)), affine)


def test_empty_and_wrong_rank_arrays_are_rejected():
    with pytest.raises(GeometryError, match="empty"):
        Volume(np.zeros((1, 0, 3, 3)), np.eye(4))
    with pytest.raises(GeometryError, match="C, X, Y"):
        Volume(np.zeros((3,)), np.eye(4))


def test_volume_is_frozen():
    v = Volume.from_spatial(np.zeros((2, 2, 2)), np.eye(4))
    with pytest.raises(AttributeError):
        v.affine = np.eye(4)  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        v.affine[0, 0] = 2


def test_label_map_requires_integers():
    with pytest.raises(GeometryError, match="integer"):
        LabelMap(np.zeros((1, 2, 2, 2), np.float32), np.eye(4))
    lm = LabelMap.from_volume(Volume.from_spatial(np.array([[[0.0, 2.0]]]), np.eye(4)))
    assert lm.array.dtype.kind == "i"
    assert lm.label_counts() == {0: 1, 2: 1}
    with pytest.raises(GeometryError, match="non-integer"):
        LabelMap.from_volume(Volume.from_spatial(np.array([[[0.5, 2.0]]]), np.eye(4)))


def test_with_array_checks_shape():
    v = Volume.from_spatial(np.zeros((2, 3, 4)), np.eye(4))
    with pytest.raises(GeometryError, match="spatial shape"):
        v.with_array(np.zeros((1, 3, 3, 4)))
