"""One TotalSegmentator task on one image, step by step as TotalSegmentator 2.18.0 runs it
(``python_api.py: totalsegmentator``, ``nnunet.py: nnUNet_predict_image``):

1. **Locate** (a task with a crop step, or ``--roi-subset``): the locator model runs on the whole
   image the way of step 2-6 below, and its mask of the wanted classes, widened by 20 mm, is the
   box the image is cropped to (int32). No wanted class found: an empty mask, nothing else runs.
2. **Closest canonical** orientation (RAS).
3. **Resample** to the task's spacing (order 1, int32); see :mod:`.geometry`.
4. **Parts**: each network (only those holding a requested class under ``--roi-subset``) gives
   its labels on that grid; they are turned into the task's global class ids and merged in
   order, a later part's non-zero voxels overwriting an earlier one's.
5. **Postprocessing** of the task, on the network grid (:mod:`.postprocess`).
6. **Back**: nearest neighbour to the canonical grid, the orientation undone, the crop undone
   (background outside it); under ``--roi-subset`` every other class is set to background.

The result is TotalSegmentator's ``--ml`` mask: uint8 global class ids on the input's own grid.
Memory: one part's class probabilities exist at a time, on the network grid; what reaches the
input grid is labels only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.errors import InputError
from medseg.models.totalseg import geometry
from medseg.models.totalseg.networks import Networks, nnunet_labels
from medseg.models.totalseg.postprocess import POSTPROCESSING
from medseg.models.totalseg.tasks import (
    LOCATOR_MARGIN_MM,
    Locator,
    Task,
    WeightsRelease,
    class_map,
)


@dataclass(frozen=True)
class Stage:
    """One run of steps 2-6: networks, how their labels become global ids, grid, tile step."""

    parts: tuple[WeightsRelease, ...]
    #: per part, a lookup table part label -> global id (None: the labels are global already)
    luts: tuple[np.ndarray | None, ...]
    spacing: tuple[float, float, float] | None
    tile_step: float
    postprocess: str | None = None
    classes: dict[int, str] | None = None


def check_roi_subset(task: Task, names: Sequence[str] | None) -> tuple[str, ...] | None:
    """The requested class names, each one of the task's; None when none are requested."""
    if names is None:
        return None
    wanted = tuple(dict.fromkeys(str(n) for n in names))
    if task.locator is None:
        raise InputError(task.model_name, "--roi-subset works with the total and total_mr "
                                          "tasks only (as in TotalSegmentator)")
    if not wanted:
        raise InputError(task.model_name, "--roi-subset needs at least one class name")
    known = set(task.classes.values())
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise InputError(task.model_name, f"--roi-subset: {', '.join(unknown)} is not a class "
                                          f"of this task (see `medseg info {task.model_name}`)")
    return wanted


def releases_needed(task: Task, roi_subset: tuple[str, ...] | None) -> tuple[WeightsRelease, ...]:
    """The dataset folders one run needs: the locator (if any) first, then the parts."""
    out: list[WeightsRelease] = []
    locator = _locator(task, roi_subset)
    if locator is not None:
        out.append(locator.release)
    for part in task.parts_for(set(roi_subset) if roi_subset else None):
        if all(part.folder != o.folder for o in out):
            out.append(part)
    return tuple(out)


def _locator(task: Task, roi_subset: tuple[str, ...] | None) -> Locator | None:
    if task.crop:
        return task.crop_locator
    return task.locator if roi_subset else None


def _lut(mapping: dict[int, int]) -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    for local, global_id in mapping.items():
        lut[local] = global_id
    return lut


def task_stage(task: Task, roi_subset: tuple[str, ...] | None) -> Stage:
    parts = task.parts_for(set(roi_subset) if roi_subset else None)
    luts = tuple(_lut(task.part_labels[p.dataset_id]) if p.dataset_id in task.part_labels
                 else None for p in parts)
    return Stage(parts, luts, task.spacing, task.tile_step,
                 task.ts_task if task.ts_task in POSTPROCESSING else None, task.classes)


def locator_stage(locator: Locator) -> Stage:
    s = locator.spacing
    return Stage((locator.release,), (None,), (s, s, s), locator.tile_step)


def run_stage(stage: Stage, networks: Networks, data: np.ndarray, affine: np.ndarray,
              batch_size: int = 2) -> np.ndarray:
    """Steps 2-6 (without the crop) on ``data`` (``X, Y, Z``); uint8 global ids, same grid."""
    canonical, canonical_affine, ornt = geometry.to_canonical(data, affine)
    if stage.spacing is not None:
        grid, grid_affine = geometry.to_spacing(canonical, canonical_affine, stage.spacing)
    else:
        grid, grid_affine = canonical, canonical_affine
    merged: np.ndarray | None = None
    for part, lut in zip(stage.parts, stage.luts, strict=True):
        labels = nnunet_labels(networks.get(part), grid, grid_affine, stage.tile_step,
                               batch_size)
        if lut is not None:
            labels = lut[labels]
        if merged is None:
            merged = labels
        else:  # a later part overwrites an earlier one where it labels a voxel
            np.copyto(merged, labels, where=labels != 0)
        del labels
    assert merged is not None
    del grid
    if stage.postprocess is not None and stage.classes is not None:
        merged = POSTPROCESSING[stage.postprocess](merged, stage.classes,
                                                   geometry.header_zooms(grid_affine))
    if merged.shape != canonical.shape:
        merged = geometry.to_shape(merged, canonical.shape)
    return geometry.from_canonical(merged, ornt)


def run_task(task: Task, networks: Networks, data: np.ndarray, affine: np.ndarray,
             roi_subset: tuple[str, ...] | None = None, batch_size: int = 2) -> np.ndarray:
    """TotalSegmentator's ``--ml`` mask of ``task`` for ``data`` (``X, Y, Z``, file voxel order,
    nibabel's ``affine``): uint8 global class ids on the same grid."""
    if data.ndim != 3:
        raise InputError("input", f"TotalSegmentator tasks run on 3D images; this one has "
                                  f"shape {data.shape}")
    locator = _locator(task, roi_subset)
    box = None
    work, work_affine = data, affine
    if locator is not None:
        found = run_stage(locator_stage(locator), networks, data, affine, batch_size)
        inverse = {name: value for value, name in class_map(locator.classes_of).items()}
        wanted = task.crop or roi_subset or ()
        mask = np.isin(found, [inverse[n] for n in wanted])
        del found
        if not mask.any():  # TotalSegmentator: "Crop is empty. Returning empty segmentation."
            return np.zeros(data.shape, dtype=np.uint8)
        box = geometry.mask_box(mask, LOCATOR_MARGIN_MM, affine)
        del mask
        work, work_affine = geometry.crop(data, affine, box)
    labels = run_stage(task_stage(task, roi_subset), networks, work, work_affine, batch_size)
    del work
    if box is not None:
        labels = geometry.uncrop(labels, data.shape, box)
    if roi_subset:
        keep = [v for v, n in task.classes.items() if n in roi_subset]
        labels[~np.isin(labels, keep)] = 0
    return labels
