"""The array steps TotalSegmentator 2.18.0 takes around nnU-Net, reproduced on plain arrays.

All of them work in the file's own voxel order with nibabel's affine, as TotalSegmentator does:

* **crop** (``cropping.py``): the bounding box of a mask's non-zero voxels, widened by a margin
  in mm turned into whole voxels per axis (``int(margin / zoom)``) and clipped to the image; the
  cropped image is cast to int32 (TotalSegmentator crops with ``dtype=np.int32``); the affine's
  origin moves to the box's first voxel.
* **closest canonical** (``nib.as_closest_canonical``): axes flipped and permuted to the closest
  RAS order, with nibabel's own orientation functions; undone the same way.
* **resampling** (``resampling.py: change_spacing``): the zoom per axis is the voxel size as
  nibabel's header stores it (float32) over the target spacing; ``scipy.ndimage.zoom`` with
  order 1 and ``mode="nearest"`` (the output shape is scipy's ``round(shape * zoom)``), the
  result cast to int32, each affine column divided by its zoom. An image already at the target
  spacing is left as it is (not cast). Back to the canonical grid: ``ndimage.zoom`` with order
  0 and the zoom that reaches that exact shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np
from nibabel import orientations
from scipy import ndimage

Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def header_zooms(affine: np.ndarray) -> np.ndarray:
    """Voxel sizes as nibabel's NIfTI header stores them for ``affine`` (float32 values)."""
    header = nib.Nifti1Image(np.zeros((1, 1, 1), dtype=np.uint8), affine).header
    return np.array(header.get_zooms()[:3])


def mask_box(mask: np.ndarray, margin_mm: Sequence[float], affine: np.ndarray) -> Box:
    """Bounding box (half-open, per axis) of ``mask``'s non-zero voxels plus the margin."""
    margin = (np.array(margin_mm) / header_zooms(affine)).astype(int)
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(np.any(mask, axis=others))
        lo, hi = (int(hit[0]) - margin[axis], int(hit[-1]) + 1 + margin[axis]) if hit.size \
            else (0, mask.shape[axis])
        box.append((max(0, int(lo)), min(int(mask.shape[axis]), int(hi))))
    return (box[0], box[1], box[2])


def box_slices(box: Box) -> tuple[slice, slice, slice]:
    return (slice(*box[0]), slice(*box[1]), slice(*box[2]))


def crop(data: np.ndarray, affine: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """The image inside ``box`` as int32, and its affine."""
    out = data[box_slices(box)].astype(np.int32)
    shifted = np.array(affine, dtype=np.float64)
    shifted[:3, 3] = (affine @ np.array([box[0][0], box[1][0], box[2][0], 1.0]))[:3]
    return out, shifted


def uncrop(labels: np.ndarray, shape: Sequence[int], box: Box) -> np.ndarray:
    out = np.zeros(tuple(shape), dtype=labels.dtype)
    out[box_slices(box)] = labels
    return out


def to_canonical(data: np.ndarray, affine: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``data`` and ``affine`` turned to the closest RAS orientation, and the orientation
    transform that did it (as ``nib.as_closest_canonical``)."""
    ornt = orientations.io_orientation(affine)
    if np.array_equal(ornt, orientations.axcodes2ornt("RAS")):
        return data, affine, ornt
    turned = orientations.apply_orientation(data, ornt)
    return turned, affine @ orientations.inv_ornt_aff(ornt, data.shape), ornt


def from_canonical(labels: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Undo :func:`to_canonical` on an array of the canonical grid."""
    back = orientations.ornt_transform(orientations.axcodes2ornt("RAS"), ornt)
    return np.ascontiguousarray(orientations.apply_orientation(labels, back))


def to_spacing(data: np.ndarray, affine: np.ndarray, spacing: Sequence[float]
               ) -> tuple[np.ndarray, np.ndarray]:
    """The image resampled to ``spacing`` (order 1, int32) and its affine; unchanged when it
    is already there. ``data`` of any real type is read in double precision."""
    zooms = header_zooms(affine)
    target = np.array([float(s) for s in spacing])
    if np.array_equal(zooms, target):
        return data, affine
    zoom = zooms / target
    out = ndimage.zoom(data, zoom, output=np.float64, order=1, mode="nearest")
    new_affine = np.array(affine, dtype=np.float64)
    new_affine[:3, :3] = new_affine[:3, :3] / zoom[None, :]
    return out.astype(np.int32), new_affine


def to_shape(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A label map back to ``shape`` by nearest neighbour (``ndimage.zoom`` order 0, as
    TotalSegmentator's ``change_spacing`` with a target shape)."""
    zoom = np.array(shape) / np.array(labels.shape)
    if np.all(zoom == 1):
        return labels
    out = ndimage.zoom(labels, zoom, order=0, mode="nearest")
    if out.shape != tuple(shape):  # scipy rounds shape * zoom; it reaches the shape exactly
        raise ValueError(f"nearest-neighbour resampling gave {out.shape}, not {tuple(shape)}")
    return out
