"""Cohorts with known answers for the study tests: cubes shifted by whole voxels.

A cube of side ``s`` voxels shifted by ``k`` voxels along the first axis overlaps its original
in ``(s - k) s^2`` voxels, so its Dice is exactly ``(s - k) / s``; its volumes are
``s^3`` voxels times the voxel volume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.io import write_image
from medseg.volume import LabelMap, affine_from_geometry

SPACING = (1.0, 1.0, 2.0)
AFFINE = affine_from_geometry(SPACING, (0.0, 0.0, 0.0))
SHAPE = (24, 20, 16)


def cube(side: int, shift: int = 0, label: int = 1, shape=SHAPE, start: int = 4) -> np.ndarray:
    """Label map with a cube of ``side`` voxels at ``start``, moved ``shift`` along axis 0."""
    arr = np.zeros(shape, np.uint8)
    lo = start + shift
    arr[lo:lo + side, start:start + side, start:start + side] = label
    return arr


def write(folder: Path, case: str, arr: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case}.nii.gz"
    write_image(LabelMap(arr[None], AFFINE), path)
    return path


def shifted_cohort(root: Path, sides, shifts_by_model: dict[str, list[int]]) -> dict[str, Path]:
    """``root/ref`` holds a cube per case; ``root/<model>`` the same cube shifted per case."""
    folders = {"ref": root / "ref", **{m: root / m for m in shifts_by_model}}
    for i, side in enumerate(sides):
        case = f"case{i:02d}"
        write(folders["ref"], case, cube(side))
        for model, shifts in shifts_by_model.items():
            write(folders[model], case, cube(side, shifts[i]))
    return folders
