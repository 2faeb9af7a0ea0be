"""The array steps around nnU-Net (crop, closest canonical, TotalSegmentator's resampling) on
images with known geometry: LPS, oblique, permuted axes, anisotropic voxels."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from medseg.models.totalseg import geometry


def _affine(spacing, perm=(0, 1, 2), flips=(1, 1, 1), degrees=(0, 0, 0), origin=(10, -20, 30)):
    rot = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()
    axes = np.eye(3)[:, list(perm)] * np.array(flips)
    affine = np.eye(4)
    affine[:3, :3] = rot @ axes * np.array(spacing)[None, :]
    affine[:3, 3] = origin
    return affine


GEOMETRIES = {
    "lps": _affine((0.8, 0.8, 2.5), flips=(-1, -1, 1)),
    "oblique": _affine((1.1, 0.9, 3.0), degrees=(12, -7, 20)),
    "permuted": _affine((2.0, 0.7, 0.7), perm=(2, 0, 1), flips=(1, -1, 1)),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_closest_canonical_is_nibabels_and_is_undone(name):
    affine = GEOMETRIES[name]
    data = np.random.default_rng(0).integers(-1000, 1000, (21, 17, 9)).astype(np.int16)
    img = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    turned, turned_affine, ornt = geometry.to_canonical(data, affine)
    assert np.array_equal(turned, np.asanyarray(img.dataobj))
    assert np.allclose(turned_affine, img.affine)
    assert nib.aff2axcodes(turned_affine) == ("R", "A", "S")
    assert np.array_equal(geometry.from_canonical(turned, ornt), data)


def test_resampling_keeps_the_first_voxel_and_interpolates_linearly():
    affine = _affine((0.75, 0.75, 2.5))
    x = np.arange(40, dtype=np.float64)
    ramp = np.broadcast_to((10 * x)[:, None, None], (40, 30, 12)).astype(np.int16)
    out, out_affine = geometry.to_spacing(ramp, affine, (1.5, 1.5, 1.5))
    # scipy's output shape: round(shape * zoom), zoom = header voxel size / target
    assert out.shape == (20, 15, 20)
    assert out.dtype == np.int32
    assert np.allclose(out_affine[:3, 3], affine[:3, 3])  # voxel 0 stays where it was
    assert np.allclose(np.linalg.norm(out_affine[:3, :3], axis=0), [1.5, 1.5, 1.5])
    # corners map to corners (scipy's zoom): output voxel i samples input i * 39 / 19,
    # linearly interpolated and truncated to int32
    expected = np.trunc(10 * np.arange(20) * 39 / 19).astype(np.int32)
    assert np.array_equal(out[:, 0, 0], expected)
    back = geometry.to_shape(np.ones(out.shape, dtype=np.uint8), ramp.shape)
    assert back.shape == ramp.shape and back.dtype == np.uint8


def test_an_image_already_at_the_spacing_is_left_as_it_is():
    data = np.zeros((8, 8, 8), dtype=np.float32) + 0.5
    out, _ = geometry.to_spacing(data, np.diag([3.0, 3.0, 3.0, 1.0]), (3, 3, 3))
    assert out is data and out.dtype == np.float32


def test_crop_box_margin_in_whole_voxels_clipped_to_the_image():
    affine = _affine((0.8, 0.8, 2.5))
    mask = np.zeros((100, 100, 40), dtype=bool)
    mask[40:50, 45:55, 10:12] = True
    box = geometry.mask_box(mask, (20, 20, 20), affine)
    # int(20 / zoom) with the header's float32 zoom: 0.8 is stored as 0.80000001, so 24
    # voxels (as TotalSegmentator: 20 / 0.80000001 = 24.99999963); int(20 / 2.5) = 8
    assert box == ((16, 74), (21, 79), (2, 20))
    data = np.arange(100 * 100 * 40, dtype=np.float64).reshape(mask.shape) + 0.7
    cropped, cropped_affine = geometry.crop(data, affine, box)
    assert cropped.dtype == np.int32 and cropped[0, 0, 0] == int(data[16, 21, 2])
    assert np.allclose(cropped_affine[:3, 3], (affine @ [16, 21, 2, 1])[:3])
    edge = geometry.mask_box(np.pad(np.ones((2, 2, 2), bool), ((0, 40), (0, 40), (0, 40))),
                             (20, 20, 20), affine)
    assert edge == ((0, 26), (0, 26), (0, 10))
    full = geometry.uncrop(np.ones(cropped.shape, np.uint8), mask.shape, box)
    assert full.sum() == cropped.size and full[16, 21, 2] == 1 and full[15, 21, 2] == 0
