"""Built-in label-map postprocessors (pure functions, per class, spacing-aware).

Each takes an integer array ``X, Y[, Z]`` and returns a new array of the same shape/dtype.
Components are face-connected (6-connectivity in 3D, 4 in 2D), as in nnU-Net.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

from medseg.hookspecs import hookimpl
from medseg.specs import PostprocessorSpec


def _classes(labels: np.ndarray, classes: Iterable[int] | None) -> list[int]:
    present = [int(c) for c in np.unique(labels) if c != 0]
    return present if classes is None else [c for c in present if c in set(classes)]


def _per_class_crop(labels: np.ndarray, c: int):
    """Bounding-box slices of class ``c`` (work on the crop, not the whole volume)."""
    objs = ndimage.find_objects((labels == c).astype(np.int8))
    return objs[0] if objs and objs[0] is not None else None


def keep_largest_component(labels: np.ndarray, *, spacing: Sequence[float] | None = None,
                           classes: Iterable[int] | None = None) -> np.ndarray:
    """Keep only the largest connected component of each class; the rest becomes background."""
    out = labels.copy()
    for c in _classes(labels, classes):
        box = _per_class_crop(labels, c)
        mask = labels[box] == c
        comp, n = ndimage.label(mask)
        if n <= 1:
            continue
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        drop = mask & (comp != int(np.argmax(sizes)))
        out[box][drop] = 0
    return out


def keep_largest_foreground(labels: np.ndarray, *, spacing: Sequence[float] | None = None,
                            classes: Iterable[int] | None = None) -> np.ndarray:
    """Keep only the largest connected component of the foreground taken as one object (all
    classes, or the given ones, together); whatever lies apart from it becomes background.

    For one organ made of several classes (a brain's WM, GM and CSF): islands in the air or
    in the head around it go, while the classes inside the object are left as they are."""
    values = _classes(labels, classes)
    if not values:
        return labels.copy()
    mask = np.isin(labels, values)
    comp, n = ndimage.label(mask)
    if n <= 1:
        return labels.copy()
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    out = labels.copy()
    out[mask & (comp != int(np.argmax(sizes)))] = 0
    return out


def fill_holes(labels: np.ndarray, *, spacing: Sequence[float] | None = None,
               classes: Iterable[int] | None = None) -> np.ndarray:
    """Fill background holes fully enclosed by one class (other classes are left alone)."""
    out = labels.copy()
    for c in _classes(labels, classes):
        box = _per_class_crop(labels, c)
        mask = labels[box] == c
        filled = ndimage.binary_fill_holes(mask)
        add = filled & ~mask & (labels[box] == 0)
        out[box][add] = c
    return out


def remove_small_components(labels: np.ndarray, *, spacing: Sequence[float] | None = None,
                            classes: Iterable[int] | None = None, min_volume_mm3: float = 0.0,
                            min_voxels: int = 10) -> np.ndarray:
    """Remove components smaller than ``min_volume_mm3`` (uses spacing) or ``min_voxels``."""
    voxel_mm3 = float(np.prod(spacing)) if spacing is not None else 1.0
    threshold = max(int(min_voxels), int(np.ceil(min_volume_mm3 / voxel_mm3)))
    out = labels.copy()
    for c in _classes(labels, classes):
        box = _per_class_crop(labels, c)
        mask = labels[box] == c
        comp, n = ndimage.label(mask)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())
        small = sizes < threshold
        small[0] = False
        out[box][small[comp]] = 0
    return out


@hookimpl
def medseg_register_postprocessors() -> list[PostprocessorSpec]:
    return [
        PostprocessorSpec("keep_largest", keep_largest_component,
                          "Keep the largest connected component of each class"),
        PostprocessorSpec("keep_largest_foreground", keep_largest_foreground,
                          "Keep the largest connected component of all classes together"),
        PostprocessorSpec("fill_holes", fill_holes,
                          "Fill background holes enclosed by a class"),
        PostprocessorSpec("remove_small", remove_small_components,
                          "Remove components below a volume (mm^3) or voxel count",
                          {"min_volume_mm3": 0.0, "min_voxels": 10}),
    ]
