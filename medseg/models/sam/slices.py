"""Which 2-D slices MedSAM segments for a set of 3-D prompts, and how a slice is shown to it.

MedSAM is a 2-D model. For a volume ``X, Y, Z`` (the input file's array order):

* **slice axis**: a 2-D box (:class:`~medseg.prompts.types.Box` flat on one axis) fixes it;
  otherwise the ``slice_axis`` option: an array axis 0, 1, 2, or ``axial`` (default), the array
  axis closest to the world's superior-inferior direction.
* **the image of a slice** is the slice with its two other axes ``p < q`` transposed, rows
  along ``q`` and columns along ``p``: the view SimpleITK's ``GetArrayFromImage`` (MedSAM's
  reader) gives of the same file's slice, so a box's ``x`` is the ``p`` index and ``y`` the
  ``q`` index.
* **seeds**: a slice holding a 2-D box (with the points on that slice), every slice a 3-D box
  spans (its in-plane rectangle, with the points on the slice), and a slice holding points but
  no box (points alone).
* **propagation** (2-D boxes and points alone, when ``propagate``): from each seed slice
  outwards, one slice at a time, the next slice's box is the bounding box of the previous
  slice's mask (found on the mask resized to the network input by nearest neighbour) widened
  by :data:`MARGIN` input pixels, as MedSAM's 3-D box script does; it stops where the mask
  vanishes, at the volume's end or at a slice already segmented. A 3-D box is not propagated
  beyond its own slices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.errors import InputError
from medseg.prompts.types import Prompts

#: box widening, in pixels of the network input, between propagated slices (MedSAM's
#: ``get_bbox(mask, bbox_shift=5)`` in ``medsam_infer_3Dbox_adrenal.py``)
MARGIN = 5


@dataclass(frozen=True)
class SliceSeed:
    """One slice segmented from the user's prompts; boxes ``(x0, y0, x1, y1)`` and points
    ``(x, y, label)`` in pixels of the slice image (see the module docstring)."""

    index: int
    boxes: tuple[tuple[float, float, float, float], ...]
    points: tuple[tuple[float, float, int], ...]
    propagate: bool


@dataclass(frozen=True)
class SlicePlan:
    axis: int
    seeds: tuple[SliceSeed, ...]


def axial_axis(affine: np.ndarray) -> int:
    """The array axis whose world direction is closest to superior-inferior."""
    cols = np.asarray(affine, dtype=float)[:3, :3]
    unit = cols / np.linalg.norm(cols, axis=0, keepdims=True)
    return int(np.argmax(np.abs(unit[2])))


def in_plane(axis: int) -> tuple[int, int]:
    """The two other axes ``(p, q)``: ``p`` the image's columns (x), ``q`` its rows (y)."""
    p, q = (a for a in range(3) if a != axis)
    return p, q


def slice_image(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The ``rows (q), columns (p)`` image of slice ``index`` along ``axis``."""
    return np.take(volume, index, axis=axis).T


def put_slice(target: np.ndarray, axis: int, index: int, image: np.ndarray) -> None:
    """Write a ``rows, columns`` slice image back into ``target`` (the inverse view)."""
    view: list[slice | int] = [slice(None)] * 3
    view[axis] = index
    target[tuple(view)] = image.T


def plan_slices(prompts: Prompts, shape: Sequence[int], affine: np.ndarray, slice_axis: str,
                propagate: bool, where: str = "input") -> SlicePlan:
    """The seeds for ``prompts`` (voxel indices, checked against an image of ``shape``)."""
    flat = {b.flat_axis for b in prompts.boxes if b.flat_axis is not None}
    if len(flat) > 1:
        raise InputError(where, f"2-D boxes lie on slices of different axes {sorted(flat)}; "
                                "MedSAM segments along one axis at a time")
    axis = flat.pop() if flat else (axial_axis(affine) if slice_axis == "axial"
                                    else int(slice_axis))
    p, q = in_plane(axis)
    last = int(shape[axis]) - 1
    boxes: dict[int, list[tuple[float, float, float, float]]] = {}
    boxed_2d: set[int] = set()
    for box in prompts.boxes:
        lo, hi = box.lo, box.hi
        rect = (float(lo[p]), float(lo[q]), float(hi[p]), float(hi[q]))
        if box.flat_axis is not None:
            s = round(lo[axis])
            boxed_2d.add(s)
            boxes.setdefault(s, []).append(rect)
            continue
        first, end = int(np.ceil(lo[axis] - 0.5)), int(np.floor(hi[axis] + 0.5))
        for s in range(max(first, 0), min(end, last) + 1):
            boxes.setdefault(s, []).append(rect)
    points: dict[int, list[tuple[float, float, int]]] = {}
    for pt in prompts.points:
        s = min(max(round(pt.position[axis]), 0), last)
        points.setdefault(s, []).append((float(pt.position[p]), float(pt.position[q]),
                                         1 if pt.positive else 0))
    seeds = []
    for s in sorted(set(boxes) | set(points)):
        grows = propagate and (s in boxed_2d or s not in boxes)
        seeds.append(SliceSeed(s, tuple(boxes.get(s, ())), tuple(points.get(s, ())), grows))
    if not seeds:
        raise InputError(where, "MedSAM needs a box or a point to segment")
    return SlicePlan(axis, tuple(seeds))


def nearest_upsample_box(mask: np.ndarray, size: int, margin: int = MARGIN) -> np.ndarray | None:
    """``(x0, y0, x1, y1)`` in network-input pixels of ``mask`` (``H, W`` bool) resized to
    ``size x size`` by nearest neighbour (OpenCV's ``INTER_NEAREST``: source index
    ``floor(i * H / size)``), widened by ``margin`` and kept within ``[0, size]``; None for an
    empty mask."""
    h, w = mask.shape
    rows = np.floor(np.arange(size) * (h / size)).astype(int).clip(0, h - 1)
    cols = np.floor(np.arange(size) * (w / size)).astype(int).clip(0, w - 1)
    big = mask[rows][:, cols]
    ys, xs = np.nonzero(big)
    if ys.size == 0:
        return None
    return np.array([max(0, xs.min() - margin), max(0, ys.min() - margin),
                     min(size, xs.max() + margin), min(size, ys.max() + margin)], dtype=float)
