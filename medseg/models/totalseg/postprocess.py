"""TotalSegmentator's task-specific postprocessing, on the network grid before resampling back.

Of the tasks medseg runs, only ``body`` has one (``nnunet.py``, ``postprocessing.py``):
``body_trunc`` keeps its largest connected component, and components of ``body_extremities``
of at most 50 000 mm³ (in network-grid voxels) are removed. Components are face-connected
(``scipy.ndimage.label``'s default); on a tie the first-numbered component wins, as
TotalSegmentator's ``argmax`` over component sizes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

#: body_extremities components up to this volume are dropped
BODY_EXTREMITIES_MIN_MM3 = 50000


def keep_largest(labels: np.ndarray, value: int) -> None:
    """In place: only the largest component of ``value`` stays."""
    mask = labels == value
    components, n = ndimage.label(mask)
    if n == 0:
        return
    sizes = np.bincount(components.ravel(), minlength=n + 1)[1:]
    labels[mask] = 0
    labels[components == int(np.argmax(sizes)) + 1] = value


def drop_small(labels: np.ndarray, value: int, max_voxels: float) -> None:
    """In place: components of ``value`` with at most ``max_voxels`` voxels are removed."""
    mask = labels == value
    components, n = ndimage.label(mask)
    if n == 0:
        return
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    small = np.flatnonzero(sizes <= max_voxels)
    labels[mask & np.isin(components, small[small > 0])] = 0


def body(labels: np.ndarray, classes: dict[int, str], zooms: np.ndarray) -> np.ndarray:
    ids = {name: value for value, name in classes.items()}
    keep_largest(labels, ids["body_trunc"])
    voxel_mm3 = np.prod(zooms)  # float32, as the header's voxel sizes
    drop_small(labels, ids["body_extremities"], BODY_EXTREMITIES_MIN_MM3 / voxel_mm3)
    return labels


#: TotalSegmentator task -> its postprocessing ``fn(labels, classes, zooms) -> labels``
POSTPROCESSING: dict[str, Callable[[np.ndarray, dict[int, str], np.ndarray], np.ndarray]] = {
    "body": body,
}
