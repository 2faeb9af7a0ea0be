"""Prompts checked against the image they are for, in its voxel indices.

World coordinates are the input's RAS millimetres (:attr:`medseg.volume.Volume.affine`, which
for NIfTI is nibabel's affine); voxel indices are the input array's, in its order, voxel centres
at integers. A point must lie inside the image (within half a voxel of a border voxel's centre);
a box must overlap the image (it is clipped to it) and may be flat on one axis (a 2-D box on a
slice) but not on two or more. Every problem is one :class:`~medseg.errors.InputError` naming
the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medseg.errors import InputError
from medseg.io import read_label_map
from medseg.prompts.types import Box, Point, Prompts, PromptSpec
from medseg.volume import Volume

#: corners closer than this (in voxels) on an axis make a flat box (a box on one slice)
FLAT_TOLERANCE = 0.5


def _fmt(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in np.round(np.asarray(values, dtype=float), 2))


def world_to_voxel(volume: Volume, xyz: Sequence[float]) -> np.ndarray:
    """Voxel indices (float) of world points ``xyz`` (``..., ndim``) in ``volume``."""
    xyz = np.asarray(xyz, dtype=float)
    nd = volume.spatial_ndim
    world = np.zeros((*xyz.shape[:-1], 3))
    world[..., :nd] = xyz
    if nd == 2:  # a 2-D image lies on its own plane: take its world z
        world[..., 2] = volume.affine[2, 3]
    ijk = (np.linalg.inv(volume.affine) @ np.concatenate(
        [world, np.ones((*world.shape[:-1], 1))], axis=-1)[..., None])[..., :3, 0]
    return ijk[..., :nd]


def _check_length(values: Sequence[float], volume: Volume, what: str, where: str) -> None:
    if len(values) != volume.spatial_ndim:
        raise InputError(where, f"{what} has {len(values)} coordinates but the image is "
                                f"{volume.spatial_ndim}-D")


def resolve_point(point: Point, volume: Volume, voxel: bool, where: str) -> Point:
    _check_length(point.position, volume, f"point {_fmt(point.position)}", where)
    ijk = np.asarray(point.position, float) if voxel else world_to_voxel(volume, point.position)
    shape = np.asarray(volume.spatial_shape)
    if np.any(ijk < -0.5) or np.any(ijk > shape - 0.5):
        unit = "" if voxel else f" mm (voxel {_fmt(ijk)})"
        raise InputError(where, f"point {_fmt(point.position)}{unit} is outside the image "
                                f"({'x'.join(map(str, shape))} voxels)")
    return Point(tuple(float(v) for v in ijk), point.positive)


def resolve_box(box: Box, volume: Volume, voxel: bool, where: str) -> Box:
    _check_length(box.lo, volume, f"box corner {_fmt(box.lo)}", where)
    _check_length(box.hi, volume, f"box corner {_fmt(box.hi)}", where)
    if voxel:
        a, b = np.asarray(box.lo, float), np.asarray(box.hi, float)
    else:
        a, b = world_to_voxel(volume, [box.lo, box.hi])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    shape = np.asarray(volume.spatial_shape)
    text = f"box {_fmt(box.lo)} to {_fmt(box.hi)}{'' if voxel else ' mm'}"
    flat = (hi - lo) < FLAT_TOLERANCE
    if flat.sum() > 1 or (volume.spatial_ndim == 2 and flat.any()):
        raise InputError(where, f"{text} has zero size on {int(flat.sum())} axes (a box needs "
                                "an extent on every axis but at most one)")
    if np.any(hi < -0.5) or np.any(lo > shape - 0.5):
        raise InputError(where, f"{text} is outside the image "
                                f"({'x'.join(map(str, shape))} voxels)")
    lo, hi = np.clip(lo, 0, shape - 1), np.clip(hi, 0, shape - 1)
    centre = np.round((lo + hi) / 2)
    lo, hi = np.where(flat, centre, lo), np.where(flat, centre, hi)  # a flat box lies on a slice
    return Box(tuple(float(v) for v in lo), tuple(float(v) for v in hi))


def check_mask(mask: np.ndarray, volume: Volume, where: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != volume.spatial_shape:
        raise InputError(where, f"mask to refine has shape {mask.shape}, the image "
                                f"{volume.spatial_shape}")
    return mask.astype(bool)


def resolve_prompts(spec: PromptSpec, volume: Volume, where: str = "input") -> Prompts:
    """``spec`` in voxel indices of ``volume``; its ``init`` mask is read and must lie on the
    image's grid."""
    mask = None
    if spec.init:
        init = read_label_map(spec.init)
        if not init.same_grid(volume):
            raise InputError(spec.init, f"is not on the grid of {where} (shape "
                                        f"{init.spatial_shape} vs {volume.spatial_shape}, or "
                                        "another affine)")
        mask = check_mask(init.data != 0, volume, spec.init)
    return Prompts(tuple(resolve_point(p, volume, spec.voxel, where) for p in spec.points),
                   tuple(resolve_box(b, volume, spec.voxel, where) for b in spec.boxes), mask,
                   check_answer(spec.answer, where))


def check_prompts(prompts: Prompts, volume: Volume, where: str = "input") -> Prompts:
    """Prompts already in voxels (from code or the UI) checked against ``volume``."""
    return Prompts(tuple(resolve_point(p, volume, True, where) for p in prompts.points),
                   tuple(resolve_box(b, volume, True, where) for b in prompts.boxes),
                   None if prompts.mask is None else check_mask(prompts.mask, volume, where),
                   check_answer(prompts.answer, where))


def check_answer(answer: object, where: str) -> int:
    """A model's answer index, 0 or more (whether the model offers it: :func:`check_offered`).
    """
    if isinstance(answer, bool) or not isinstance(answer, int) or answer < 0:
        shown = answer + 1 if isinstance(answer, int) and not isinstance(answer, bool) \
            else repr(answer)
        raise InputError(where, f"answer {shown}: answers are whole numbers counted from 1")
    return answer


def check_offered(answer: int, offered: int, model: str, where: str) -> None:
    """``answer`` (0: the first) is one of the ``offered`` answers of ``model``."""
    if not 0 <= answer < offered:
        raise InputError(where, f"answer {answer + 1}: model {model!r} offers {offered} "
                                f"answer{'s' if offered > 1 else ''} to a prompt")
