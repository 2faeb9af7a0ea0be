"""Random spatial deformation: a global affine plus a smooth elastic displacement.

The deformation is a sampling grid: for every voxel of the output grid (a field of view inside
the source grid, same spacing) the source position it reads. Labels are read with nearest
neighbour, images and distance maps linearly (``torch.nn.functional.grid_sample``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medseg.synth.head import smooth_field


@dataclass(frozen=True)
class DeformRanges:
    rotation_deg: float = 12.0
    scale: float = 0.12
    shear: float = 0.02
    translation_mm: float = 8.0
    elastic_mm: float = 3.0


def _rotation(angles: Sequence[float]) -> torch.Tensor:
    a, b, c = angles
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return (rz @ ry @ rx).float()


def _u(gen: torch.Generator, half_width: float, n: int = 3) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * 2 - 1) * half_width


def sampling_grid(src_shape: Sequence[int], out_shape: Sequence[int], offset: Sequence[int],
                  spacing: Sequence[float], ranges: DeformRanges,
                  gen: torch.Generator) -> torch.Tensor:
    """``grid_sample`` grid (``1, X, Y, Z, 3``, normalised, align_corners=True) reading the
    source for an output grid whose voxel ``i`` sits at source voxel ``i + offset`` before
    deformation. The affine acts about the output grid's centre, in millimetres."""
    sp = torch.tensor([float(s) for s in spacing])
    axes = [torch.arange(n, dtype=torch.float32) for n in out_shape]
    idx = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # X, Y, Z, 3
    centre = (torch.tensor([float(n) for n in out_shape]) - 1) / 2
    mm = (idx - centre) * sp
    rot = _rotation(_u(gen, math.radians(ranges.rotation_deg)).tolist())
    scale = torch.diag(1 + _u(gen, ranges.scale))
    shear = torch.eye(3) + torch.triu(torch.ones(3, 3), 1) * _u(gen, ranges.shear).view(1, 3)
    mat = rot @ scale @ shear
    moved = mm @ mat.T + _u(gen, ranges.translation_mm)
    if ranges.elastic_mm > 0:
        amp = ranges.elastic_mm * float(torch.rand((), generator=gen))
        disp = torch.stack([smooth_field(out_shape, 6, gen) for _ in range(3)], dim=-1)
        moved = moved + amp * disp
    src_idx = moved / sp + centre + torch.tensor([float(o) for o in offset])
    size = torch.tensor([float(n) for n in src_shape])
    norm = 2 * src_idx / (size - 1).clamp_min(1) - 1
    return norm.flip(-1)[None]  # grid_sample wants (z, y, x) order for (X, Y, Z) volumes


def warp(volume: torch.Tensor, grid: torch.Tensor, *, labels: bool,
         padding: str = "zeros") -> torch.Tensor:
    """Resample a spatial ``X, Y, Z`` tensor through ``grid``; outside the source: zeros, or
    the nearest border value with ``padding="border"`` (for distance maps)."""
    out = F.grid_sample(volume[None, None].float(), grid, mode="nearest" if labels else "bilinear",
                        padding_mode=padding, align_corners=True)[0, 0]
    return out.round().to(volume.dtype) if labels else out
