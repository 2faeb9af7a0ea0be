"""Grids of the SAM-Med3D pipeline, resampled with SimpleITK as the authors' torchio does.

The authors' inference resamples with ``torchio.Resample(1.5)`` (torchio 0.20, SimpleITK
underneath): the output grid keeps the input's direction, has ``ceil(size * spacing / 1.5)``
voxels per axis and starts at the continuous input index ``(1.5 / spacing - 1) / 2`` (the outer
faces of the first voxels line up); intensities are linear-interpolated in the image's own
voxel type (an integer image stays integer: values are cast back after interpolation) with 0
outside. Label maps and masks go back with nearest neighbour. Arrays here are in the file's
``i, j, k`` order and affines map them to RAS+ millimetres, as :class:`medseg.volume.Volume`'s do.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from medseg.errors import GeometryError

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
#: voxel types SimpleITK images keep as they are (others are widened, as torchio widens them)
_WIDEN = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64,
          np.dtype(np.bool_): np.uint8, np.dtype(np.float16): np.float32}


def to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A 3-D ``i, j, k`` array with its RAS+ affine as a SimpleITK image (LPS+ geometry)."""
    if array.ndim != 3:
        raise GeometryError(f"expected a 3-D array, got shape {array.shape}")
    array = np.asarray(array)
    if array.dtype in _WIDEN:
        array = array.astype(_WIDEN[array.dtype])
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    direction = _RAS_TO_LPS @ (affine[:3, :3] / spacing)
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin((_RAS_TO_LPS @ affine[:3, 3]).tolist())
    return image


def from_sitk(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """``i, j, k`` array and RAS+ affine of a SimpleITK image."""
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    spacing = np.array(image.GetSpacing(), dtype=np.float64)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = _RAS_TO_LPS @ direction * spacing
    affine[:3, 3] = _RAS_TO_LPS @ np.array(image.GetOrigin(), dtype=np.float64)
    return array, affine


def spacing_grid(image: sitk.Image, spacing: tuple[float, float, float]) -> sitk.Image:
    """An empty image on the grid torchio 0.20's ``Resample(spacing)`` builds for ``image``."""
    old_spacing = np.array(image.GetSpacing())
    new_spacing = np.array(spacing, dtype=np.float64)
    old_size = np.array(image.GetSize())
    new_size = np.ceil(old_size * old_spacing / new_spacing).astype(np.uint16)
    new_size[old_size == 1] = 1
    start = 0.5 * (new_spacing / old_spacing - 1)
    grid = sitk.Image([int(n) for n in new_size], image.GetPixelID())
    grid.SetDirection(image.GetDirection())
    grid.SetSpacing(new_spacing.tolist())
    grid.SetOrigin(image.TransformContinuousIndexToPhysicalPoint(start.tolist()))
    return grid


def resample(image: sitk.Image, reference: sitk.Image, *, nearest: bool) -> sitk.Image:
    """``image`` on ``reference``'s grid (linear or nearest neighbour; 0 outside)."""
    f = sitk.ResampleImageFilter()
    f.SetReferenceImage(reference)
    f.SetInterpolator(sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear)
    return f.Execute(image)


def grid_image(shape: tuple[int, ...], affine: np.ndarray) -> sitk.Image:
    """An empty float image with ``shape`` and RAS+ ``affine`` (a resampling reference)."""
    return to_sitk(np.zeros(tuple(int(s) for s in shape), dtype=np.float32), affine)
