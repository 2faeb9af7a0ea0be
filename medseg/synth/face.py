"""The front of the head below the brain: eyes in orbital fat, and the air of the nasal cavity.

Real head scans hold the orbits and the nose in front of and below the frontal lobes; a model
that has only seen shells around the brain labels eyes and orbital fat as grey matter. The
MNI-derived label maps stop at the brain, so the face is placed from the brain's bounding box,
in proportions of an adult head (globes about 24 mm across, about a quarter of the brain's
width from the midline, at a quarter of its height), with random jitter; the deformation of
the draw then varies its shape. Brain voxels are never changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medseg.synth.classes import head_values
from medseg.synth.draws import uniform


def add_face(head: torch.Tensor, labels: torch.Tensor, spacing: Sequence[float], n_brain: int,
             gen: torch.Generator, axis_inferior: int = 2, axis_anterior: int = 1
             ) -> torch.Tensor:
    """``head`` (a head label map from :func:`medseg.synth.head.add_head`) with two eyes in
    orbital fat inside a block of facial soft tissue, and the nasal cavity's air, placed from
    the brain (``labels > 0``) on a grid of ``spacing`` mm whose ``axis_anterior`` grows
    forwards and ``axis_inferior`` upwards."""
    brain = labels > 0
    idx = torch.nonzero(brain)
    if idx.numel() == 0:
        return head
    values = head_values(n_brain)
    sp = torch.tensor([float(s) for s in spacing])
    lo = idx.min(0).values.float() * sp
    hi = idx.max(0).values.float() * sp
    size = hi - lo
    lateral = next(a for a in range(3) if a not in (axis_inferior, axis_anterior))
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) * s
                             for n, s in zip(head.shape, sp.tolist(), strict=True)],
                           indexing="ij")
    centre = torch.empty(3)
    centre[axis_inferior] = lo[axis_inferior] + size[axis_inferior] * uniform(gen, 0.2, 0.32)
    centre[axis_anterior] = hi[axis_anterior] - size[axis_anterior] * uniform(gen, 0.04, 0.14)
    mid = (lo[lateral] + hi[lateral]) / 2
    apart = size[lateral] * uniform(gen, 0.2, 0.26)
    radius = uniform(gen, 10.5, 13.0)
    fat = radius + uniform(gen, 3.0, 9.0)
    out = head.clone()
    free = ~brain
    # the face: soft tissue where the head left air, in an ellipsoid around the orbits
    margin = uniform(gen, 6.0, 14.0)
    semi = torch.empty(3)
    semi[lateral], semi[axis_anterior] = apart + fat + margin, 2.0 * (radius + margin)
    semi[axis_inferior] = fat + margin + 20.0
    middle = centre.clone()
    middle[lateral] = mid
    face = torch.stack([((g - float(m)) / float(a)) ** 2
                        for g, m, a in zip(grids, middle.tolist(), semi.tolist(), strict=True)]
                       ).sum(0) <= 1
    out = torch.where(free & face & (out == 0), torch.full_like(out, values["neck_soft_tissue"]),
                      out)
    for side in (-1.0, 1.0):
        c = centre.clone()
        c[lateral] = mid + side * apart
        r = torch.stack([(g - float(v)) ** 2 for g, v in zip(grids, c.tolist(), strict=True)]
                        ).sum(0).sqrt()
        out = torch.where(free & (r <= fat), torch.full_like(out, values["orbital_fat"]), out)
        out = torch.where(free & (r <= radius), torch.full_like(out, values["eye"]), out)
    # nasal cavity and sinuses: air between and below the orbits, in front of the skull base
    half = size[lateral] * uniform(gen, 0.05, 0.09)
    nose = ((grids[lateral] - mid).abs() <= half) \
        & (grids[axis_anterior] >= centre[axis_anterior] - uniform(gen, 15.0, 30.0)) \
        & (grids[axis_inferior] <= centre[axis_inferior] + uniform(gen, 0.0, 12.0))
    out = torch.where(free & nose & (out != 0), torch.full_like(out, values["sinus_air"]), out)
    return out
