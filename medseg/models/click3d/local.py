"""Where a correcting click may change the mask it refines.

A click that disagrees with the previous mask (a positive click outside it, a negative click
inside it) asks for a correction there, not a new answer everywhere. The change it may make is
limited to a ball around it whose radius is ``factor`` times the click's distance (mm) to the
other side of the previous mask's boundary (at least ``min_mm``): the missed or false part a
user clicks into reaches about that far from its centre on the side of the mask, and about as
far again beyond. Outside the balls the previous mask is kept.

Clicks that agree with the previous mask (the earlier ones of a session) ask for nothing to
change and add no ball; with no disagreeing click (a box added, or no previous mask) the
network's answer is taken everywhere it looked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medseg.prompts.types import Point


def _distance_mm(sub: np.ndarray, where: np.ndarray, spacing: np.ndarray) -> float:
    """The distance (mm) from the point ``where`` (indices of ``sub``) to the nearest true
    voxel of ``sub`` (inf when there is none)."""
    idx = np.argwhere(sub)
    if not len(idx):
        return float("inf")
    return float(np.sqrt((((idx - where) * spacing) ** 2).sum(1)).min())


def edit_region(prior: np.ndarray, points: Sequence[Point], spacing: Sequence[float],
                box: Sequence[tuple[int, int]], factor: float, min_mm: float
                ) -> np.ndarray | None:
    """On the input sub-box ``box`` (per axis ``[lo, hi)``): where the disagreeing clicks may
    change ``prior`` (boolean, the input's whole grid), or None when no click disagrees with it
    (the network's answer is then taken everywhere). ``factor`` 0 turns the rule off."""
    if factor <= 0 or not prior.any():
        return None
    window = tuple(slice(lo, hi) for lo, hi in box)
    inside = prior[window]
    origin = np.array([lo for lo, _ in box], dtype=float)
    spacing = np.asarray(spacing, dtype=float)
    grids = [(np.arange(lo, hi, dtype=float) * s) for (lo, hi), s in zip(box, spacing,
                                                                        strict=True)]
    region = np.zeros(inside.shape, dtype=bool)
    asked = False
    for point in points:
        p = np.asarray(point.position, dtype=float)
        q = np.round(p).astype(int)
        if np.any(q < 0) or np.any(q >= prior.shape):
            continue
        if bool(prior[tuple(q)]) == point.positive:
            continue  # the mask already agrees with this click
        asked = True
        other = inside if point.positive else ~inside
        reach = _distance_mm(other, p - origin, spacing)
        radius = max(factor * reach, min_mm)
        if not np.isfinite(radius):
            return None  # nothing of the other side in view: no scale to limit the change to
        d2 = sum(((g - c * s) ** 2).reshape([-1 if a == i else 1 for i in range(len(box))])
                 for a, (g, c, s) in enumerate(zip(grids, p, spacing, strict=True)))
        region |= d2 <= radius ** 2
    return region if asked else None
