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
    voxel of ``sub`` (inf when there is none): searched in cubes of growing half-width ``r``
    mm around the point, since a voxel within ``r`` mm lies inside that cube."""
    shape = np.asarray(sub.shape)
    reach = 4.0 * float(spacing.max())
    while True:
        half = np.ceil(reach / spacing).astype(int)
        lo = np.maximum(np.floor(where).astype(int) - half, 0)
        hi = np.minimum(np.ceil(where).astype(int) + half + 1, shape)
        idx = np.argwhere(sub[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))])
        whole = bool(np.all(lo == 0) and np.all(hi == shape))
        if len(idx):
            nearest = float(np.sqrt((((idx + lo - where) * spacing) ** 2).sum(1)).min())
            if nearest <= reach or whole:
                return nearest
        elif whole:
            return float("inf")
        reach *= 2


def _ball(region: np.ndarray, centre: np.ndarray, radius: float, spacing: np.ndarray) -> None:
    """Set the voxels of ``region`` within ``radius`` mm of ``centre`` (indices)."""
    half = np.floor(radius / spacing).astype(int) + 1
    lo = np.maximum(np.floor(centre).astype(int) - half, 0)
    hi = np.minimum(np.ceil(centre).astype(int) + half + 1, region.shape)
    if np.any(hi <= lo):
        return
    axes = [((np.arange(a, b) - c) * s) ** 2 for a, b, c, s in zip(lo, hi, centre, spacing,
                                                                   strict=True)]
    d2 = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]
    window = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    region[window] |= d2 <= radius ** 2


def corrections(prior: np.ndarray, points: Sequence[Point], spacing: Sequence[float],
                box: Sequence[tuple[int, int]], factor: float, min_mm: float
                ) -> list[tuple[np.ndarray, float]] | None:
    """The clicks that disagree with ``prior`` (boolean, the input's whole grid), in order,
    each with the radius (mm) of the ball it may change: ``factor`` times its distance to the
    other side of the boundary within the input sub-box ``box`` (per axis ``[lo, hi)``), at
    least ``min_mm``. None when the rule is off (``factor`` 0), ``prior`` is empty, or a
    disagreeing click sees nothing of the other side (no scale to limit its change to)."""
    if factor <= 0 or not prior.any():
        return None
    window = tuple(slice(lo, hi) for lo, hi in box)
    inside = prior[window]
    origin = np.array([lo for lo, _ in box], dtype=float)
    spacing = np.asarray(spacing, dtype=float)
    found = []
    for point in points:
        p = np.asarray(point.position, dtype=float)
        q = np.round(p).astype(int)
        if np.any(q < 0) or np.any(q >= prior.shape):
            continue
        if bool(prior[tuple(q)]) == point.positive:
            continue  # the mask already agrees with this click
        other = inside if point.positive else ~inside
        radius = max(factor * _distance_mm(other, p - origin, spacing), min_mm)
        if not np.isfinite(radius):
            return None
        found.append((p, radius))
    return found


def ball_mask(shape: Sequence[int], centre: np.ndarray, radius: float,
              spacing: Sequence[float]) -> np.ndarray:
    """Boolean ``shape``: the voxels within ``radius`` mm of ``centre`` (indices)."""
    out = np.zeros(tuple(shape), dtype=bool)
    _ball(out, np.asarray(centre, dtype=float), radius, np.asarray(spacing, dtype=float))
    return out


def edit_region(prior: np.ndarray, points: Sequence[Point], spacing: Sequence[float],
                box: Sequence[tuple[int, int]], factor: float, min_mm: float
                ) -> np.ndarray | None:
    """On the input sub-box ``box`` (per axis ``[lo, hi)``): where the disagreeing clicks may
    change ``prior`` (boolean, the input's whole grid), or None when no click disagrees with it
    (the network's answer is then taken everywhere). ``factor`` 0 turns the rule off."""
    found = corrections(prior, points, spacing, box, factor, min_mm)
    if not found:
        return None
    origin = np.array([lo for lo, _ in box], dtype=float)
    spacing = np.asarray(spacing, dtype=float)
    region = np.zeros(tuple(hi - lo for lo, hi in box), dtype=bool)
    for p, radius in found:
        _ball(region, p - origin, radius, spacing)
    return region
