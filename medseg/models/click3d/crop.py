"""The crop a click3d model sees: a cube of ``size`` voxels at an isotropic spacing, axis-aligned
with the input array, and separable linear resampling between it and the input grid.

A :class:`Crop` is a centre in voxel indices of the input array (floats), the crop spacing in
mm and the input's spacing per array axis. Crop voxel ``k`` along axis ``a`` sits at input index
``centre[a] + (k - (size - 1) / 2) * spacing / input_spacing[a]``. Nothing is reoriented: the
network is trained with random flips and axis permutations, so array order does not matter.

Resampling is separable (one axis after the other, two neighbours per output voxel), so mapping
a 64^3 crop back onto a large input costs about as much as writing the covered part of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Crop:
    """A cubic crop of the input (see the module docstring)."""

    centre: tuple[float, ...]
    spacing: float
    size: int
    input_spacing: tuple[float, ...]

    def step(self, axis: int) -> float:
        """Input voxels per crop voxel along ``axis``."""
        return self.spacing / float(self.input_spacing[axis])

    def to_input(self, axis: int, k: np.ndarray | float) -> np.ndarray | float:
        """Input index of crop coordinate ``k`` along ``axis``."""
        return self.centre[axis] + (k - (self.size - 1) / 2) * self.step(axis)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Crop coordinates of input indices ``points`` (``..., 3``)."""
        points = np.asarray(points, dtype=float)
        steps = np.array([self.step(a) for a in range(len(self.centre))])
        return (points - np.asarray(self.centre)) / steps + (self.size - 1) / 2

    def input_coordinates(self) -> list[np.ndarray]:
        """Per axis, the input index of every crop voxel."""
        k = np.arange(self.size, dtype=float)
        return [np.asarray(self.to_input(a, k)) for a in range(len(self.centre))]

    def covered(self, shape: Sequence[int]) -> list[tuple[int, int]]:
        """Per axis, the input index range ``[lo, hi)`` the crop covers (clipped to ``shape``)."""
        out = []
        for a, n in enumerate(shape):
            first = self.to_input(a, -0.5)
            last = self.to_input(a, self.size - 0.5)
            out.append((int(np.clip(np.ceil(first), 0, n)), int(np.clip(np.floor(last) + 1, 0, n))))
        return out


def _linear_plan(n: int, coords: np.ndarray
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For reading an axis of ``n`` voxels at float indices ``coords`` (linear): the two
    neighbours' indices, the weight of the upper one, and whether each read lies within half a
    voxel of the axis."""
    c = torch.as_tensor(np.asarray(coords, dtype=np.float64)).to(torch.float32)
    inside = (c >= -0.5) & (c <= n - 0.5)
    c = c.clamp(0, max(n - 1, 0))
    lo = c.floor().long().clamp(0, max(n - 2, 0))
    w = (c - lo.float()).clamp(0, 1) if n > 1 else torch.zeros_like(c)
    hi = (lo + 1).clamp(max=n - 1)
    return lo, hi, w, inside


def _interpolate(x: torch.Tensor, axis: int, lo: torch.Tensor, hi: torch.Tensor,
                 w: torch.Tensor, inside: torch.Tensor, fill: float) -> torch.Tensor:
    shape = [1] * x.dim()
    shape[axis] = -1
    w, inside = w.view(shape).to(x.dtype), inside.view(shape)
    out = x.index_select(axis, lo) * (1 - w) + x.index_select(axis, hi) * w
    return torch.where(inside, out, torch.full_like(out, fill))


def _resample_axis(x: torch.Tensor, axis: int, coords: np.ndarray, fill: float) -> torch.Tensor:
    """``x`` read at float indices ``coords`` along ``axis`` (linear; ``fill`` beyond half a
    voxel outside)."""
    return _interpolate(x, axis, *_linear_plan(x.shape[axis], coords), fill)


def _box_resample_axis(x: torch.Tensor, axis: int, coords: np.ndarray, kernel: int,
                       fill: float) -> torch.Tensor:
    """:func:`_resample_axis` of ``x`` averaged over ``kernel`` voxels along ``axis`` (fewer at
    its ends: the mean of the voxels there), the average computed only for the voxels the
    linear reads use: a large input costs about ``size * kernel`` of its slices, not all."""
    if kernel <= 1:
        return _resample_axis(x, axis, coords, fill)
    n, half = x.shape[axis], kernel // 2
    lo, hi, w, inside = _linear_plan(n, coords)
    rows = torch.unique(torch.cat([lo, hi]))  # sorted
    means = [x.narrow(axis, max(i - half, 0), min(i + half + 1, n) - max(i - half, 0))
             .mean(dim=axis, keepdim=True) for i in rows.tolist()]
    return _interpolate(torch.cat(means, dim=axis), axis, torch.searchsorted(rows, lo),
                        torch.searchsorted(rows, hi), w, inside, fill)


def resample(x: torch.Tensor, coords: Sequence[np.ndarray], fill: float = 0.0) -> torch.Tensor:
    """``x`` (``X, Y, Z``) read at the float indices ``coords[a]`` along each axis ``a``."""
    for axis, c in enumerate(coords):
        x = _resample_axis(x, axis, c, fill)
    return x


def antialias_kernel(step: float) -> int:
    """The box (voxels, odd) averaged before reading an axis ``step`` input voxels apart: about
    ``step`` where that is at least 2, else none (1)."""
    return max(1, round(step) | 1) if step >= 2 else 1


def antialias(x: torch.Tensor, steps: Sequence[float]) -> torch.Tensor:
    """A box average over about ``step`` voxels on axes read at least 2 voxels apart (the
    whole array; :func:`sample_image` computes it only where it reads)."""
    kernel = tuple(antialias_kernel(s) for s in steps)
    if all(k == 1 for k in kernel):
        return x
    return F.avg_pool3d(x[None, None], kernel, stride=1, padding=tuple(k // 2 for k in kernel),
                        count_include_pad=False)[0, 0]


def _read_box(crop: Crop, shape: Sequence[int]) -> list[tuple[int, int]] | None:
    """The input sub-box the crop reads: what it covers and one voxel beyond, for the linear
    reads at its edge (None when it covers nothing of the input)."""
    ranges = crop.covered(shape)
    if any(hi - lo <= 0 for lo, hi in ranges):
        return None
    return [(max(lo - 1, 0), min(hi + 1, n)) for (lo, hi), n in zip(ranges, shape, strict=True)]


def sample_image(image: torch.Tensor, crop: Crop) -> torch.Tensor:
    """The crop of ``image`` (``X, Y, Z`` float32), outside the input filled with its minimum."""
    box = _read_box(crop, image.shape)
    if box is None:
        return torch.full((crop.size,) * 3, float(image.min()))
    x = image[tuple(slice(lo, hi) for lo, hi in box)].float()
    fill = float(image.min())
    for axis, (c, (lo, _)) in enumerate(zip(crop.input_coordinates(), box, strict=True)):
        x = _box_resample_axis(x, axis, c - lo, antialias_kernel(crop.step(axis)), fill)
    return x


def sample_mask(mask: torch.Tensor, crop: Crop) -> torch.Tensor:
    """The crop of a boolean/0-1 ``mask`` as 0/1 float32 (linear, thresholded at 0.5)."""
    box = _read_box(crop, mask.shape)
    if box is None:
        return torch.zeros((crop.size,) * 3)
    sub = mask[tuple(slice(lo, hi) for lo, hi in box)].float()
    coords = [c - lo for c, (lo, _) in zip(crop.input_coordinates(), box, strict=True)]
    return (resample(sub, coords, fill=0.0) >= 0.5).float()


def paste_covered(values: torch.Tensor, crop: Crop, shape: Sequence[int]) -> torch.Tensor:
    """Crop-grid ``values`` (``C, n, n, n``) on the part of the input grid ``shape`` that the
    crop covers (``crop.covered(shape)``), linear."""
    ranges = crop.covered(shape)
    if any(hi - lo <= 0 for lo, hi in ranges):
        return torch.zeros((values.shape[0], *(hi - lo for lo, hi in ranges)),
                           dtype=values.dtype)
    x = values
    for axis, (lo, hi) in enumerate(ranges):
        idx = np.arange(lo, hi, dtype=float)
        x = _resample_axis(x, axis + 1, (idx - crop.centre[axis]) / crop.step(axis)
                           + (crop.size - 1) / 2, 0.0)
    return x

