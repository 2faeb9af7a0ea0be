"""A TotalSegmentator task as a medseg :class:`~medseg.models.base.SegmentationModel`.

The format ``totalseg`` is found by name only (:mod:`.naming`). ``prepare`` keeps the input;
``predict`` runs the whole pipeline (:mod:`.pipeline`) and returns the label map on the input
grid (TotalSegmentator's global class ids, not class probabilities: nothing the size of the
classes times the image exists); ``restore`` turns the ids into the model's output channels.
TotalSegmentator's tile step, fold 0 and no mirroring always apply: ``--overlap``,
``--mirror`` and ``--fast`` do not change a task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import InputError
from medseg.models.base import ModelInfo, Prediction
from medseg.models.totalseg.naming import FORMAT, OPTIONS, root_of
from medseg.models.totalseg.networks import Networks
from medseg.models.totalseg.pipeline import check_roi_subset, releases_needed, run_task
from medseg.models.totalseg.status import summary
from medseg.models.totalseg.tasks import Task, get_task, segment_codes, weights_dir
from medseg.ops.device import resolve_device
from medseg.volume import Volume


def task_info(task: Task, roi_subset: Sequence[str] | None = None,
              root: Path | None = None) -> ModelInfo:
    classes = {v: n for v, n in task.classes.items() if not roi_subset or n in roi_subset}
    labels = {"background": 0, **{n: v for v, n in sorted(classes.items())}}
    state = summary(task, root)
    folders = tuple(f"{f['folder']}: {f['state']}, {int(f['size_bytes']) / 1e6:.0f} MB"
                    for f in state["folders"])  # type: ignore[union-attr]
    details: dict[str, Any] = {
        "task": task.name,
        "weights": f"{state['state']}, {int(state['size_bytes']) / 1e6:.0f} MB on disk in "  # type: ignore[call-overload]
                   f"{root if root is not None else weights_dir()}",
        "folders": folders,
        "licence": f"{task.licence} ({task.licence_url})",
        "reproduces": task.ts_command + (" --roi_subset " + " ".join(roi_subset)
                                         if roi_subset else ""),
        "tile_step": task.tile_step,
        "segment_codes": segment_codes(set(classes.values())),
    }
    if roi_subset:
        details["roi_subset"] = list(roi_subset)
    return ModelInfo(
        name=task.model_name, format=FORMAT, labels=labels, spatial_dims=3, in_channels=1,
        spacing=task.spacing, modality=task.modality,
        folds=("0",), source=f"TotalSegmentator task {task.name!r}: "
                             + ", ".join(r.folder for r in task.parts), details=details)


def describe(path: Path, **options: Any) -> ModelInfo:
    """Metadata only: the task table and the state of its weight folders."""
    task = get_task(Path(path).name)
    roi = check_roi_subset(task, options.get("roi_subset"))
    return task_info(task, roi, root_of(path))


@dataclass
class _Prepared:
    volume: Volume | None


class TotalSegModel:
    """A TotalSegmentator task with its networks loaded (once, for every case it segments)."""

    def __init__(self, task: Task, roi_subset: Sequence[str] | None = None,
                 root: Path | None = None, device: Any = None) -> None:
        self.task = task
        self.roi_subset = check_roi_subset(task, roi_subset)
        self.root = root
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.networks = Networks(releases_needed(task, self.roi_subset), task.name, root,
                                 self.device)
        self.info = task_info(task, self.roi_subset, root)
        values = self.info.label_values
        self._channel = np.zeros(256, dtype=np.uint8)
        self._channel[values] = np.arange(len(values), dtype=np.uint8)

    def prepare(self, volume: Volume, settings: Any) -> _Prepared:
        if getattr(settings, "probabilities", False):
            raise InputError(self.task.model_name, "TotalSegmentator tasks give labels, not "
                                                   "probability maps (drop --probabilities)")
        if volume.spatial_ndim != 3 or volume.n_channels != 1:
            raise InputError("input", f"{self.task.model_name} runs on single-channel 3D "
                                      "images")
        return _Prepared(volume)

    def predict(self, prepared: _Prepared, settings: Any) -> torch.Tensor:
        """TotalSegmentator's mask on the input grid (``X, Y, Z`` global ids, uint8)."""
        volume = prepared.volume
        if volume is None:
            raise InputError("input", "this prepared image was already predicted")
        prepared.volume = None
        labels = run_task(self.task, self.networks, volume.array[0], volume.affine,
                          self.roi_subset,
                          max(1, int(getattr(settings, "sw_batch_size", 2) or 2)))
        return torch.from_numpy(labels)

    def restore(self, prepared: _Prepared, probabilities: torch.Tensor,
                settings: Any) -> Prediction:
        return Prediction(self._channel[probabilities.numpy()])

    def memory_estimate(self, volume: Volume) -> int:
        """Peak bytes for one image beyond the input itself: labels and masks on the input
        grid, and the largest part's work on the network grid (the image in float32 and
        int32, its class logits in float32, the sliding window's weights, the argmax)."""
        voxels = int(np.prod(volume.spatial_shape))
        grid = float(voxels)
        if self.task.spacing:
            grid = voxels * float(np.prod(volume.spacing) / np.prod(self.task.spacing))
        classes = max(len(p) for p in self.task.part_labels.values()) + 1 \
            if self.task.part_labels else len(self.task.classes) + 1
        return int(voxels * 4 + grid * (4 * classes + 17))


def load(path: Path, *, registry: Any = None, device: Any = None,
         **options: Any) -> TotalSegModel:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InputError(path, f"TotalSegmentator tasks do not take {', '.join(unknown)}")
    task = get_task(Path(path).name)
    return TotalSegModel(task, options.get("roi_subset"), root_of(path), device)


__all__ = ["FORMAT", "OPTIONS", "TotalSegModel", "describe", "load"]
