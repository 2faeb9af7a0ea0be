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


def _resample_axis(x: torch.Tensor, axis: int, coords: np.ndarray, fill: float) -> torch.Tensor:
    """``x`` read at float indices ``coords`` along ``axis`` (linear; ``fill`` beyond half a
    voxel outside)."""
    n = x.shape[axis]
    c = torch.as_tensor(np.asarray(coords, dtype=np.float64)).to(torch.float32)
    inside = (c >= -0.5) & (c <= n - 0.5)
    c = c.clamp(0, max(n - 1, 0))
    lo = c.floor().long().clamp(0, max(n - 2, 0))
    w = (c - lo.float()).clamp(0, 1) if n > 1 else torch.zeros_like(c)
    hi = (lo + 1).clamp(max=n - 1)
    shape = [1] * x.dim()
    shape[axis] = -1
    w, inside = w.view(shape).to(x.dtype), inside.view(shape)
    out = x.index_select(axis, lo) * (1 - w) + x.index_select(axis, hi) * w
    return torch.where(inside, out, torch.full_like(out, fill))


def resample(x: torch.Tensor, coords: Sequence[np.ndarray], fill: float = 0.0) -> torch.Tensor:
    """``x`` (``X, Y, Z``) read at the float indices ``coords[a]`` along each axis ``a``."""
    for axis, c in enumerate(coords):
        x = _resample_axis(x, axis, c, fill)
    return x


def antialias(x: torch.Tensor, steps: Sequence[float]) -> torch.Tensor:
    """A box average over about ``step`` voxels on axes read at least 2 voxels apart."""
    kernel = tuple(max(1, round(s) | 1) if s >= 2 else 1 for s in steps)
    if all(k == 1 for k in kernel):
        return x
    return F.avg_pool3d(x[None, None], kernel, stride=1, padding=tuple(k // 2 for k in kernel),
                        count_include_pad=False)[0, 0]


def sample_image(image: torch.Tensor, crop: Crop) -> torch.Tensor:
    """The crop of ``image`` (``X, Y, Z`` float32), outside the input filled with its minimum."""
    ranges = crop.covered(image.shape)
    if any(hi - lo <= 0 for lo, hi in ranges):
        return torch.full((crop.size,) * 3, float(image.min()))
    # read a voxel beyond the covered range for interpolation at its edge
    box = [(max(lo - 1, 0), min(hi + 1, n)) for (lo, hi), n in zip(ranges, image.shape,
                                                                   strict=True)]
    sub = image[tuple(slice(lo, hi) for lo, hi in box)].float()
    sub = antialias(sub, [crop.step(a) for a in range(3)])
    coords = [c - lo for c, (lo, _) in zip(crop.input_coordinates(), box, strict=True)]
    return resample(sub, coords, fill=float(image.min()))


def sample_mask(mask: torch.Tensor, crop: Crop) -> torch.Tensor:
    """The crop of a boolean/0-1 ``mask`` as 0/1 float32 (linear, thresholded at 0.5)."""
    coords = crop.input_coordinates()
    return (resample(mask.float(), coords, fill=0.0) >= 0.5).float()


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


def paste(values: torch.Tensor, crop: Crop, shape: Sequence[int]) -> torch.Tensor:
    """Crop-grid ``values`` (``C, n, n, n``) on the input grid ``C, *shape``: linear inside the
    crop, zeros outside it."""
    out = torch.zeros((values.shape[0], *shape), dtype=values.dtype)
    index = [slice(None), *(slice(lo, hi) for lo, hi in crop.covered(shape))]
    out[tuple(index)] = paste_covered(values, crop, shape)
    return out
