"""Voxels per label value of a label map, fast on the large grids of a CT.

``np.bincount`` first copies the whole map to int64 (eight bytes a voxel: 280 MB for a 35 M
voxel CT) and then counts; QC, the volume tables and every click of a prompt session count the
same map again. A map of a few values (a mask, a handful of organs) is counted one value at a
time without a copy (``np.count_nonzero``, ten times faster there); a map of many values (117
TotalSegmentator classes) still goes through ``np.bincount``.
"""

from __future__ import annotations

import numpy as np

#: up to this many foreground values, count them one by one
FEW_VALUES = 8


def label_counts(labels: np.ndarray, minlength: int = 0) -> np.ndarray:
    """``np.bincount`` of the non-negative integer array ``labels`` (all of it, any shape):
    int64 counts of length ``max(labels.max() + 1, minlength)``."""
    flat = np.asarray(labels).reshape(-1)
    if flat.dtype.kind not in "ui":
        raise TypeError(f"label counts need an integer array, not {flat.dtype}")
    top = int(flat.max(initial=0))
    if top > FEW_VALUES or (flat.dtype.kind == "i" and int(flat.min(initial=0)) < 0):
        return np.bincount(flat.astype(np.intp, copy=False), minlength=minlength)
    counts = np.zeros(max(top + 1, minlength), dtype=np.int64)
    for value in range(1, top + 1):
        counts[value] = np.count_nonzero(flat == value)
    counts[0] = flat.size - counts[1:].sum()
    return counts
