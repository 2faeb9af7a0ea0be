"""From an input volume and its prompts to SAM-Med3D's crop, and from the crop back.

The steps of the authors' inference (``utils/infer_utils.py``: ``data_preprocess``,
``sam_model_infer``, ``data_postprocess``):

1. resample to 1.5 mm (linear, the image's own voxel type; :mod:`.grid`);
2. reorient to the closest RAS+ axis order;
3. cut the 128^3 cube centred on the target (theirs: the ground-truth label's bounding box;
   here: the voxels of the positive points, and of the mask prompt when one is given),
   zero-padded outside the image;
4. z-score the cube over its voxels above 0 (mean and unbiased standard deviation);
5. points become the voxel indices of the cube (the nearest voxel of each point);
6. the 128^3 mask goes back onto the input's grid by nearest neighbour (0 outside the cube).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medseg.errors import MedsegError
from medseg.models.sammed3d import grid
from medseg.models.sammed3d.crop import centred_window, to_ras
from medseg.prompts.types import Prompts
from medseg.volume import Volume


@dataclass
class Crop:
    """SAM-Med3D's view of one input: the normalised cube and the prompts in it."""

    #: ``1, 1, S, S, S`` float32, z-scored
    image: torch.Tensor
    #: ``N, 3`` voxel indices of the cube, in the order given
    points: np.ndarray
    #: ``N`` point labels: 1 positive, 0 negative
    labels: np.ndarray
    #: the mask prompt on the cube (``S, S, S`` bool), or None
    mask: np.ndarray | None
    #: cube voxel -> RAS+ mm
    affine: np.ndarray
    input_shape: tuple[int, int, int]
    input_affine: np.ndarray


def _nearest_voxels(positions: np.ndarray, from_affine: np.ndarray,
                    to_affine: np.ndarray) -> np.ndarray:
    """Continuous voxel positions of one grid -> the nearest voxels of another."""
    homog = np.c_[positions, np.ones(len(positions))].T
    mapped = (np.linalg.inv(to_affine) @ from_affine @ homog)[:3].T
    return np.floor(mapped + 0.5).astype(int)


def _corners(mask: np.ndarray) -> np.ndarray:
    """The first and last voxel of ``mask``'s bounding box (``2, 3``)."""
    lo, hi = [], []
    for axis in range(3):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        lo.append(hits[0])
        hi.append(hits[-1])
    return np.array([lo, hi])


def zscore_over_positive(cube: np.ndarray) -> torch.Tensor:
    """``(x - mean) / std`` over the voxels above 0 (torch float32, unbiased std)."""
    values = torch.from_numpy(np.ascontiguousarray(cube)).float()
    inside = values[torch.from_numpy(np.ascontiguousarray(cube > 0))]
    if inside.numel() < 2:
        raise MedsegError("SAM-Med3D: the 128^3 crop around the points has fewer than 2 voxels "
                          "above 0, over which its intensities are normalised")
    mean, std = inside.mean(), inside.std()
    if not bool(std > 0):
        raise MedsegError("SAM-Med3D: the voxels above 0 in the crop around the points all "
                          "have one intensity; it cannot be normalised")
    return (values - mean) / std


def crop_for(volume: Volume, prompts: Prompts, *, size: int,
             spacing: tuple[float, float, float]) -> Crop:
    """The cube around ``prompts`` (points in voxel indices of ``volume``)."""
    if volume.n_channels != 1 or volume.spatial_ndim != 3:
        raise MedsegError(f"SAM-Med3D segments one 3-D image; this input has "
                          f"{volume.n_channels} channels and {volume.spatial_ndim} axes")
    if not prompts.points:
        raise MedsegError("SAM-Med3D needs at least one point")
    source = grid.to_sitk(volume.array[0], volume.affine)
    reference = grid.spacing_grid(source, spacing)
    fine, fine_affine = grid.from_sitk(grid.resample(source, reference, nearest=False))
    fine, ras_affine = to_ras(fine, fine_affine)
    positions = np.array([p.position for p in prompts.points], dtype=np.float64)
    labels = np.array([1 if p.positive else 0 for p in prompts.points], dtype=np.int64)
    voxels = _nearest_voxels(positions, volume.affine, ras_affine)
    target = voxels[labels == 1] if labels.any() else voxels
    mask_ras = None
    if prompts.mask is not None:
        mask_src = grid.to_sitk(np.asarray(prompts.mask, dtype=np.uint8), volume.affine)
        mask_fine, mask_affine = grid.from_sitk(grid.resample(mask_src, reference,
                                                              nearest=True))
        mask_ras, _ = to_ras(mask_fine, mask_affine)
        if mask_ras.any():
            target = np.concatenate([target, _corners(mask_ras)])
    window = centred_window(target, size)
    in_cube = voxels - np.array(window.start)
    outside = ((in_cube < 0) | (in_cube >= size)).any(axis=1)
    if outside.any():
        extent = size * float(max(spacing))
        which = ", ".join(str(int(i) + 1) for i in np.flatnonzero(outside))
        raise MedsegError(f"SAM-Med3D sees a {size}^3 crop at {spacing[0]:g} mm ({extent:g} mm "
                          f"wide); point(s) {which} fall outside the crop centred on the "
                          f"positive points: give points of one object")
    return Crop(
        image=zscore_over_positive(window.cut(fine))[None, None],
        points=in_cube, labels=labels,
        mask=None if mask_ras is None else window.cut(mask_ras).astype(bool),
        affine=window.affine(ras_affine),
        input_shape=tuple(int(s) for s in volume.spatial_shape),  # type: ignore[arg-type]
        input_affine=np.asarray(volume.affine, dtype=np.float64))


def to_input(cube: np.ndarray, crop: Crop) -> np.ndarray:
    """A float32 map on the cube -> the input's grid by nearest neighbour (0 outside)."""
    image = grid.to_sitk(np.asarray(cube, dtype=np.float32), crop.affine)
    reference = grid.grid_image(crop.input_shape, crop.input_affine)
    back, _ = grid.from_sitk(grid.resample(image, reference, nearest=True))
    return np.ascontiguousarray(back, dtype=np.float32)

