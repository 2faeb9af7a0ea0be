"""The clicks a user would make, for training promptable models and for interactive
evaluation (the protocol of DeepGrow, SAM-Med3D and their successors).

The first click goes to the centre of the object: the voxel farthest (in mm) from its
boundary. Each next click goes to the centre of the largest error region of the current
prediction: positive inside a missed part, negative inside a false part. Deterministic unless a
random generator is given (then one of the voxels at least ``spread`` of the way to the centre
is drawn, as training wants).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from medseg.prompts.types import Point


def _centre(region: np.ndarray, spacing: Sequence[float], rng: np.random.Generator | None,
            spread: float) -> tuple[int, ...]:
    """The voxel of ``region`` farthest from its boundary (a region touching the array's edge
    counts the edge as boundary)."""
    sl = ndimage.find_objects(region.astype(np.uint8))[0]
    sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
    sub = np.pad(region[sl], 1)
    dist = ndimage.distance_transform_edt(sub, sampling=spacing)[(slice(1, -1),) * sub.ndim]
    if rng is None:  # of the deepest voxels, the one nearest their centroid
        deepest = np.argwhere(dist >= dist.max() - 1e-6)
        idx = deepest[int(np.argmin(((deepest - deepest.mean(0)) ** 2).sum(1)))]
    else:
        candidates = np.flatnonzero(dist >= spread * dist.max())
        idx = np.unravel_index(int(rng.choice(candidates)), dist.shape)
    return tuple(int(i + s.start) for i, s in zip(idx, sl, strict=True))


def first_click(reference: np.ndarray, spacing: Sequence[float] | None = None,
                rng: np.random.Generator | None = None, spread: float = 0.5) -> Point:
    """A positive click at the centre of ``reference`` (boolean, not empty)."""
    reference = np.asarray(reference, bool)
    if not reference.any():
        raise ValueError("the reference is empty: there is nothing to click on")
    spacing = tuple(spacing or (1.0,) * reference.ndim)
    return Point(tuple(float(v) for v in _centre(reference, spacing, rng, spread)), True)


def random_click(reference: np.ndarray, rng: np.random.Generator) -> Point:
    """A positive click on a voxel of ``reference`` drawn uniformly (SAM-Med3D's evaluation
    draws its first click this way): most voxels of an object lie near its boundary, so this
    is a harder first click than the centre."""
    idx = np.flatnonzero(np.asarray(reference, bool))
    if not len(idx):
        raise ValueError("the reference is empty: there is nothing to click on")
    voxel = np.unravel_index(int(rng.choice(idx)), np.shape(reference))
    return Point(tuple(float(v) for v in voxel), True)


def largest_error(prediction: np.ndarray, reference: np.ndarray
                  ) -> tuple[np.ndarray, bool] | None:
    """The largest connected error region (boolean) and whether it is a missed part (True:
    the next click is positive), or None when the prediction is perfect."""
    best: tuple[int, np.ndarray, bool] | None = None
    for positive, error in ((True, reference & ~prediction), (False, prediction & ~reference)):
        if not error.any():
            continue
        comps, _ = ndimage.label(error)
        sizes = np.bincount(comps.ravel())[1:]
        k = int(np.argmax(sizes))
        if best is None or sizes[k] > best[0]:
            best = (int(sizes[k]), comps == k + 1, positive)
    return None if best is None else (best[1], best[2])


def next_click(prediction: np.ndarray, reference: np.ndarray,
               spacing: Sequence[float] | None = None, rng: np.random.Generator | None = None,
               spread: float = 0.5) -> Point | None:
    """The correcting click for ``prediction`` against ``reference`` (None when they agree)."""
    prediction, reference = np.asarray(prediction, bool), np.asarray(reference, bool)
    found = largest_error(prediction, reference)
    if found is None:
        return None
    region, positive = found
    spacing = tuple(spacing or (1.0,) * reference.ndim)
    return Point(tuple(float(v) for v in _centre(region, spacing, rng, spread)), positive)
