"""The 128^3 window of the SAM-Med3D pipeline: closest-to-RAS orientation, then a cube centred
on a set of voxels, zero-padded where it leaves the image.

The centring follows torchio's ``CropOrPad(mask_name=...)``, which the authors' inference
uses: the centre of the voxels' bounding box (upper bound exclusive), moved down half a voxel
when it falls between voxels, so that a single voxel ``p`` ends up at index ``size // 2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel import orientations


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The array flipped and permuted to the closest RAS+ axis order, with its new affine."""
    current = orientations.io_orientation(affine)
    change = orientations.ornt_transform(current, orientations.axcodes2ornt(("R", "A", "S")))
    if np.array_equal(change, [[0, 1], [1, 1], [2, 1]]):
        return array, affine
    turned = orientations.apply_orientation(array, change)
    return np.ascontiguousarray(turned), affine @ orientations.inv_ornt_aff(change,
                                                                            array.shape)


@dataclass(frozen=True)
class Window:
    """A cube of ``size`` voxels starting at ``start`` (may be negative) of a grid."""

    start: tuple[int, int, int]
    size: int

    def cut(self, array: np.ndarray, fill: float = 0) -> np.ndarray:
        """The window's voxels of ``array`` (``fill`` outside it), same dtype."""
        out = np.full((self.size,) * 3, fill, dtype=array.dtype)
        src, dst = [], []
        for s, n in zip(self.start, array.shape, strict=True):
            lo, hi = max(s, 0), min(s + self.size, n)
            if hi <= lo:
                return out
            src.append(slice(lo, hi))
            dst.append(slice(lo - s, hi - s))
        out[tuple(dst)] = array[tuple(src)]
        return out

    def affine(self, grid_affine: np.ndarray) -> np.ndarray:
        shift = np.eye(4)
        shift[:3, 3] = self.start
        return grid_affine @ shift


def centred_window(voxels: np.ndarray, size: int) -> Window:
    """The ``size``-cube centred on the bounding box of integer ``voxels`` (``N, 3``)."""
    lo = voxels.min(axis=0)
    hi = voxels.max(axis=0) + 1
    starts = []
    for a, b in zip(lo, hi, strict=True):
        centre = (a + b) / 2
        if (size % 2 == 0) != (centre % 1 == 0):
            centre -= 0.5
        starts.append(int(centre - size / 2))
    return Window((starts[0], starts[1], starts[2]), size)
