"""The nnU-Net networks of a task: each dataset folder loaded once, used in place, and run on
TotalSegmentator's grid.

Each network is medseg's nnU-Net v2 runtime (:mod:`medseg.models.nnunet`, checked equal to
nnU-Net's own predictor) on the folder TotalSegmentator runs: ``<trainer>__nnUNetPlans__
3d_fullres``, fold 0, ``checkpoint_final.pth``, no mirroring, the task's tile step. The image
it gets is what TotalSegmentator writes for nnU-Net (``s01_0000.nii.gz``): the resampled array
with the voxel sizes a NIfTI header stores (float32), so nnU-Net's own crop, normalisation and
resampling decisions are the same. The tiles' logits are summed in nnU-Net's float16 buffers,
as nnU-Net does (this decides near-ties, mostly where tiles overlap at the image's edges, and
halves the memory). A folder that ``medseg models pull`` installed is checked
against its checksum record first (:func:`medseg.io.checksum_record.check_installed`). The answer is
the label map nnU-Net writes: the argmax of the float32 softmax on the network grid (no
class-probability volume is resampled when the grids agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import InputError
from medseg.io.checksum_record import check_installed
from medseg.models.nnunet.model import NnunetModel, read_definition
from medseg.models.nnunet.sliding_window import softmax_inplace
from medseg.models.totalseg.geometry import header_zooms
from medseg.models.totalseg.status import PRESENT, folder_status
from medseg.models.totalseg.tasks import PREFIX, WeightsRelease
from medseg.volume import Volume


@dataclass(frozen=True)
class RunSettings:
    """What :class:`NnunetModel` reads from its settings (overlap = 1 - tile step)."""

    overlap: float
    sw_batch_size: int = 2
    mirror: bool = False
    probabilities: bool = False


def missing_error(release: WeightsRelease, task_name: str, root: Path | None) -> InputError | None:
    """The one-line error for a dataset folder that is not (completely) there, else None."""
    status = folder_status(release, root)
    if status.state == PRESENT:
        return None
    pull = f"run `medseg models pull {PREFIX}{task_name}`"
    if status.state == "partial":
        return InputError(status.path, f"TotalSegmentator weights are incomplete (no "
                                       f"{status.lacking}); {pull} to fetch them again")
    return InputError(status.path, f"TotalSegmentator weights not found; {pull} (or set "
                                   "TOTALSEG_WEIGHTS_PATH / TOTALSEG_HOME_DIR to where they are)")


class Networks:
    """A task's networks, loaded once each (a batch reuses them for every case)."""

    def __init__(self, releases: tuple[WeightsRelease, ...], task_name: str,
                 root: Path | None, device: Any = None) -> None:
        for r in releases:  # every folder checked before anything is loaded
            error = missing_error(r, task_name, root)
            if error is not None:
                raise error
            check_installed(r.path(root))  # a folder medseg pulled must be as it was pulled
        self.root = root
        self.device = device
        self.loads = 0
        self._models: dict[str, NnunetModel] = {}
        for r in releases:
            self.get(r)

    def get(self, release: WeightsRelease) -> NnunetModel:
        model = self._models.get(release.folder)
        if model is None:
            path = release.path(self.root) / release.trainer_folder
            definition = read_definition(path, configuration=release.configuration,
                                         folds=["0"], checkpoint="final")
            model = NnunetModel(definition, self.device)
            self._models[release.folder] = model
            self.loads += 1
        return model

    @property
    def loaded(self) -> tuple[str, ...]:
        return tuple(self._models)


def nnunet_labels(model: NnunetModel, grid: np.ndarray, affine: np.ndarray,
                  tile_step: float, batch_size: int = 2) -> np.ndarray:
    """nnU-Net's label map (its dataset.json values, uint8) for the image ``grid`` (``X, Y, Z``
    on the network grid, file voxel order) with ``affine``."""
    zooms = header_zooms(affine).astype(np.float64)
    as_stored = np.array(affine, dtype=np.float64)
    norms = np.linalg.norm(as_stored[:3, :3], axis=0)
    as_stored[:3, :3] = as_stored[:3, :3] * (zooms / norms)[None, :]
    volume = Volume(grid[None], as_stored)
    settings = RunSettings(overlap=1.0 - tile_step, sw_batch_size=batch_size)
    prepared = model.prepare(volume, settings)
    logits = model.logits(prepared, settings, dtype=torch.float16)  # nnU-Net's own buffers
    crop_shape = prepared.shape_after_crop
    if tuple(logits.shape[1:]) == tuple(crop_shape):
        # same grid (TotalSegmentator resampled to the plans' spacing): nnU-Net's float32
        # softmax of its float16 logits, then the argmax (first class on a tie)
        best = argmax_of_softmax(logits)
        del logits
        channels = np.zeros(prepared.shape_before_crop, dtype=np.uint8)
        channels[tuple(slice(a, b) for a, b in prepared.bbox)] = best
        channels = prepared.axis_map.backward(channels[None])[0]
    else:  # nnU-Net resamples to its own spacing (tasks TotalSegmentator does not resample)
        probabilities = softmax_inplace(logits.float())
        del logits
        channels = model.restore(prepared, probabilities, settings).channels
        del probabilities
    values = np.asarray(model.info.label_values, dtype=np.uint8)
    return np.ascontiguousarray(values[channels])


def argmax_of_softmax(logits: torch.Tensor, slab: int = 8) -> np.ndarray:
    """``argmax(softmax(logits.float()))`` over the class axis, in slabs along the first
    spatial axis (uint8 class indices)."""
    out = np.empty(tuple(logits.shape[1:]), dtype=np.uint8)
    for start in range(0, logits.shape[1], slab):
        part = torch.softmax(logits[:, start:start + slab].float(), dim=0)
        out[start:start + slab] = torch.argmax(part, dim=0).numpy()
    return out
