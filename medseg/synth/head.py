"""Head label maps around a skull-stripped brain: shells of random thickness and shape.

The MNI-derived label maps stop at the brain mask. As SynthSeg does when no head labels exist,
the head is drawn as shells around that mask, outwards: extra-cerebral CSF, skull (on most
draws with a layer of marrow between its tables, bright on T1), scalp muscle and scalp fat, then
background; below the brain a block of soft tissue stands for the face and neck that real head
scans hold. Each shell's thickness varies smoothly over the head, so every
draw has another shape. Thicknesses follow adult anatomy (skull 4-9 mm, scalp 3-9 mm).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from medseg.synth.classes import head_values
from medseg.synth.draws import uniform


def brain_distance(labels: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance in mm from each voxel outside the (hole-filled) brain mask to the mask; 0 inside.

    ``labels`` is a spatial label map (``X, Y, Z``), brain where it is non-zero."""
    brain = ndimage.binary_fill_holes(labels > 0)
    return ndimage.distance_transform_edt(~brain, sampling=[float(s) for s in spacing]
                                          ).astype(np.float32)


def smooth_field(shape: Sequence[int], coarse: int, gen: torch.Generator) -> torch.Tensor:
    """A smooth random field of unit standard deviation (``coarse``^3 values, upsampled)."""
    c = torch.randn((1, 1, coarse, coarse, coarse), generator=gen)
    return F.interpolate(c, size=tuple(int(s) for s in shape), mode="trilinear",
                         align_corners=True)[0, 0]


def _thickness(shape, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    """Per-voxel thickness in mm: a random mean in [lo, hi] with smooth variation of ~25 %."""
    mean = uniform(gen, lo, hi)
    return (mean * (1 + 0.25 * smooth_field(shape, 4, gen))).clamp_min(0.0)


def add_head(labels: torch.Tensor, distance: torch.Tensor, n_brain: int, gen: torch.Generator,
             axis_inferior: int = 2, p_marrow: float = 0.6) -> torch.Tensor:
    """Head label map: ``labels`` (``X, Y, Z`` integer, brain classes ``1..n_brain``) plus shells.

    ``distance`` is :func:`brain_distance` on the same grid (it may have been warped with the
    labels). ``axis_inferior`` is the voxel axis whose low end is inferior (RAS grids: 2).
    Brain voxels are never changed.
    """
    values = head_values(n_brain)
    shape = labels.shape
    outside = labels == 0
    thick = torch.stack([
        _thickness(shape, 0.0, 4.0, gen),   # extra-cerebral CSF
        _thickness(shape, 4.0, 9.0, gen),   # skull
        _thickness(shape, 1.5, 5.0, gen),   # scalp muscle / galea
        _thickness(shape, 1.5, 5.0, gen),   # scalp fat and skin
    ])
    shell = (distance[None] > torch.cumsum(thick, dim=0)).sum(0)  # 0..3 a shell, 4 beyond
    names = ("extra_cerebral_csf", "skull", "scalp_muscle", "scalp_fat")
    lut = torch.tensor([values[n] for n in names] + [0], dtype=labels.dtype)
    out = torch.where(outside, lut[shell], labels)
    # the diploe: on most heads fatty marrow (bright on T1) between the skull's two dark tables
    draw_marrow = float(torch.rand((), generator=gen)) < p_marrow
    lo = 0.25 + 0.1 * float(torch.rand((), generator=gen))  # drawn always: same stream after
    if draw_marrow:
        frac = (distance - thick[0]) / thick[1].clamp_min(1e-3)
        marrow = outside & (shell == 1) & (frac > lo) & (frac < 1.0 - lo)
        out = torch.where(marrow, torch.full_like(out, values["skull_marrow"]), out)
    # face / neck: soft tissue below a plane near the bottom of the brain, within reach of it
    brain_idx = torch.nonzero(~outside)
    if brain_idx.numel():
        z = brain_idx[:, axis_inferior].float()
        lo, hi = float(z.min()), float(z.max())
        plane = lo + (hi - lo) * (0.05 + 0.3 * float(torch.rand((), generator=gen)))
        coord = torch.arange(shape[axis_inferior], dtype=torch.float32)
        view = [1, 1, 1]
        view[axis_inferior] = -1
        below = coord.view(view) < plane
        reach = 20.0 + 40.0 * float(torch.rand((), generator=gen))
        sel = (out == 0) & below & (distance <= reach * (1 + 0.3 * smooth_field(shape, 3, gen)))
        out = torch.where(sel, torch.full_like(out, values["neck_soft_tissue"]), out)
    return out
