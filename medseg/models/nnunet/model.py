"""An nnU-Net v2 result folder as a medseg :class:`~medseg.models.base.SegmentationModel`.

``prepare`` reproduces nnU-Net's preprocessing (:mod:`.preprocessing`), ``predict`` its
sliding window over the selected folds (:mod:`.sliding_window`) and returns softmax
probabilities on the model grid, and ``restore`` maps them back to the input grid the
memory-lean way: one class at a time, the log-probability is resampled as the plans'
``resampling_fn_probabilities`` says, the crop is undone with background outside it, and a
running argmax keeps only the best class so far. Resampling log-probabilities linearly gives the
argmax (and the softmax) of resampled logits exactly, the class-independent log-sum-exp term
dropping out, so the mask is nnU-Net's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import InputError
from medseg.io.limits import max_memory_bytes
from medseg.models.base import ModelInfo, Prediction
from medseg.models.memory_budget import Footprint, nnunet_tiles
from medseg.models.nnunet import folder as folders
from medseg.models.nnunet.checkpoint import Checkpoint, read_checkpoint
from medseg.models.nnunet.network import (
    architecture_class,
    build_network,
    check_fits_weights,
    check_network_memory,
    load_weights,
    planned_activations,
    planned_parameters,
)
from medseg.models.nnunet.plans import (
    Configuration,
    DatasetInfo,
    Plans,
    read_dataset,
    read_plans,
)
from medseg.models.nnunet.preprocessing import (
    Prepared,
    check_normalizations,
    model_grid_shape,
    prepare_volume,
)
from medseg.models.nnunet.resampling import (
    check_supported,
    nearest_axis_split,
    resample_channel,
)
from medseg.models.nnunet.sliding_window import (
    every_channel,
    mirrored_forward,
    sliding_window_logits,
    softmax_inplace,
)
from medseg.ops.device import resolve_device

FORMAT = "nnunet_v2"
OPTIONS = ("configuration", "folds", "checkpoint")
#: nnU-Net's default tile step (half a patch)
DEFAULT_STEP = 0.5
#: probabilities below this are treated as this when taking logs (float32's smallest normal)
_TINY = float(np.finfo(np.float32).tiny)
_MR_NAMES = ("mr", "mri", "t1", "t2", "flair", "adc", "dwi", "pd", "t1w", "t2w", "t1c", "t1ce")


@dataclass(frozen=True)
class Definition:
    """Everything read from a model folder's JSON files (no weights)."""

    folder: folders.TrainerFolder
    plans: Plans
    dataset: DatasetInfo
    config: Configuration
    folds: tuple[str, ...]
    checkpoint: str


def _modality(channels: tuple[str, ...]) -> str | None:
    kinds = set()
    for name in channels:
        key = name.strip().casefold()
        if key == "ct":
            kinds.add("CT")
        elif key in _MR_NAMES or key.startswith(("t1", "t2", "mr")):
            kinds.add("MR")
        else:
            return None
    return kinds.pop() if len(kinds) == 1 else None


def read_definition(path: Path, configuration: Any = None, folds: Any = None,
                    checkpoint: Any = None) -> Definition:
    if configuration is not None and not isinstance(configuration, str):
        raise InputError(path, f"configuration must be a name such as 3d_fullres, got "
                               f"{configuration!r}")
    folder = folders.locate(Path(path), configuration)
    plans = read_plans(folder.plans_path)
    dataset = read_dataset(folder.dataset_path)
    name = configuration or folder.configuration
    if name is None:
        names = plans.configuration_names
        name = folders.DEFAULT_CONFIGURATION if folders.DEFAULT_CONFIGURATION in names else (
            names[0] if len(names) == 1 else None)
        if name is None:
            raise InputError(folder.path, f"cannot tell the configuration of this renamed "
                                          f"trainer folder; pick one of {', '.join(names)} with "
                                          "--configuration")
    config = plans.configuration(name)
    if config.previous_stage is not None:
        raise InputError(folder.plans_path, f"configuration {name!r} is a cascade stage (it "
                                            f"needs {config.previous_stage!r} first); cascades "
                                            "are not supported")
    if plans.label_manager != "LabelManager":
        raise InputError(folder.plans_path, f"label manager {plans.label_manager!r} is not "
                                            "supported (LabelManager only)")
    check_normalizations(config, plans, len(dataset.channel_names))
    check_supported(config.resampling_data, folder.plans_path)
    check_supported(config.resampling_probabilities, folder.plans_path)
    architecture_class(config.architecture, folder.plans_path)
    ck = folders.checkpoint_name(checkpoint, folder.path)
    chosen = folders.select_folds(folder, folds, ck)
    return Definition(folder, plans, dataset, config, tuple(chosen), ck)


def _in_input_order(values: tuple, plans: Plans) -> tuple:
    """A per-axis tuple from nnU-Net's axis order to the input's ``x, y, z`` order."""
    if len(values) != len(plans.transpose_forward):
        return values
    out: list[Any] = [None] * len(values)
    for a, t in enumerate(plans.transpose_forward):
        out[len(values) - 1 - t] = values[a]
    return tuple(out)


def model_info(d: Definition, mirroring_axes: tuple[int, ...] | None = None) -> ModelInfo:
    c, plans = d.config, d.plans
    intensity = [plans.intensity[i].to_dict() if i in plans.intensity else None
                 for i in range(len(d.dataset.channel_names))]
    details: dict[str, Any] = {
        "configuration": c.name,
        "trainer": d.folder.trainer or None,
        "plans": d.folder.plans_name or plans.plans_name,
        "normalization": list(c.normalization_schemes),
        "architecture": c.architecture.short_name
        + (" (old plans layout)" if c.plans_layout == "old" else ""),
        "checkpoint": d.checkpoint,
        #: nnU-Net's own axis order (ModelInfo.spacing is in the input's x, y, z order)
        "plans_spacing": list(c.spacing),
    }
    if mirroring_axes is not None:
        details["mirroring_axes"] = list(mirroring_axes)
    three_d = len(c.patch_size) == 3
    return ModelInfo(
        name=plans.dataset_name or d.folder.path.parent.name or d.folder.label,
        format=FORMAT, labels=dict(d.dataset.labels), spatial_dims=3,
        in_channels=len(d.dataset.channel_names),
        spacing=_in_input_order(c.spacing, plans) if three_d else tuple(c.spacing),
        patch_size=_in_input_order(c.patch_size, plans) if three_d else tuple(c.patch_size),
        modality=_modality(d.dataset.channel_names), channel_names=d.dataset.channel_names,
        folds=d.folds,
        source=f"{d.folder.label} at {d.folder.path}",
        details=details,
        training_record={"intensity": intensity} if all(intensity) else None,
    )


def describe(path: Path, **options: Any) -> ModelInfo:
    """Metadata only: no checkpoint is opened."""
    return model_info(read_definition(Path(path), **options))


class NnunetModel:
    """A loaded nnU-Net v2 model (one network, one state dict per fold)."""

    def __init__(self, definition: Definition, device: Any = None) -> None:
        self.definition = d = definition
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        n_classes = len(d.dataset.labels)
        arch, plans_path = d.config.architecture, d.folder.plans_path
        # sized from the plans before any checkpoint is read or any layer allocated
        elements = planned_parameters(arch, plans_path, len(d.dataset.channel_names), n_classes,
                                      len(d.config.patch_size))
        check_network_memory(arch, plans_path, elements, max_memory_bytes())
        self.checkpoints: list[Checkpoint] = [
            read_checkpoint(d.folder.path / f"fold_{f}" / d.checkpoint) for f in d.folds]
        first = self.checkpoints[0]
        if first.configuration is not None and first.configuration != d.config.name:
            raise InputError(first.path, f"was trained in configuration "
                                         f"{first.configuration!r}, but the folder says "
                                         f"{d.config.name!r}")
        for ck in self.checkpoints:
            check_fits_weights(arch, plans_path, elements, ck.weights, ck.path)
        self.net = build_network(d.config.architecture, d.folder.plans_path,
                                 len(d.dataset.channel_names), n_classes)
        for ck in self.checkpoints:  # every fold must fit before anything runs
            load_weights(self.net, ck.weights, ck.path)
        self.net.eval().to(self.device)
        self._loaded = len(self.checkpoints) - 1
        if len(self.checkpoints) == 1:  # the network holds the one fold for good: let the
            # checkpoint's (memory-mapped) state dict go instead of keeping a second copy
            self.checkpoints = [replace(first, weights={})]
        self.mirroring_axes = first.mirroring_axes
        self.info = model_info(d, self.mirroring_axes)

    def tile_footprint(self, volume, settings) -> Footprint:
        """Memory of the sliding window on ``volume`` beyond the model-grid arrays: padding to
        the patch, tile buffers and network activations (see :mod:`..memory_budget`)."""
        d = self.definition
        arch, patch = d.config.architecture, d.config.patch_size
        classes, channels = len(d.dataset.labels), len(d.dataset.channel_names)
        activations = planned_activations(arch, d.folder.plans_path, patch, channels, classes)
        batch = max(1, int(getattr(settings, "sw_batch_size", 2) or 2))
        return nnunet_tiles(model_grid_shape(volume, d.plans, d.config), patch, channels,
                            classes, batch, activations, self.device.type == "cpu",
                            source=str(d.folder.plans_path))

    # ---- the protocol ---------------------------------------------------------------------
    def prepare(self, volume, settings) -> Prepared:
        return prepare_volume(volume, self.definition.plans, self.definition.config)

    def _fold_forwards(self, mirror: bool, batch_size: int) -> Iterator:
        axes = self.mirroring_axes if mirror else None
        for i, ck in enumerate(self.checkpoints):
            if self._loaded != i:
                load_weights(self.net, ck.weights, ck.path)
                self._loaded = i
            yield mirrored_forward(self.net, axes, self.device, batch_size)

    def predict(self, prepared: Prepared, settings) -> torch.Tensor:
        return softmax_inplace(self.logits(prepared, settings))

    def logits(self, prepared: Prepared, settings,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The sliding window's logits ``K, *model_grid`` (``dtype=torch.float16``: in
        nnU-Net's own float16 buffers, see :func:`.sliding_window.sliding_window_logits`)."""
        if prepared.image is None:
            raise InputError("input", "this prepared image was already predicted")
        overlap = getattr(settings, "overlap", None)
        step = DEFAULT_STEP if overlap is None else min(max(1.0 - float(overlap), 0.05), 1.0)
        batch = max(1, int(getattr(settings, "sw_batch_size", 2) or 2))
        with torch.no_grad():
            logits = sliding_window_logits(
                prepared.image, self.definition.config.patch_size, step,
                self._fold_forwards(bool(getattr(settings, "mirror", False)), batch),
                len(self.definition.dataset.labels), batch_size=batch, dtype=dtype)
        prepared.image = None  # the model-grid image is not needed any more
        return logits

    def restore(self, prepared: Prepared, probabilities: torch.Tensor,
                settings) -> Prediction:
        spec = self.definition.config.resampling_probabilities
        crop_shape = prepared.shape_after_crop
        keep_all = bool(getattr(settings, "probabilities", False))
        # nearest-neighbour slices along the low-res axis: argmax first, pick slices after
        split = None if keep_all else nearest_axis_split(
            spec, probabilities.shape[1:], crop_shape, prepared.model_spacing,
            prepared.input_spacing)
        work_shape = list(crop_shape)
        if split is not None:
            work_shape[split[0]] = probabilities.shape[1 + split[0]]
        best_value: torch.Tensor | None = None
        index_type = (torch.uint8, np.uint8) if probabilities.shape[0] <= 256 else (
            torch.int16, np.int16)
        best = torch.zeros(work_shape, dtype=index_type[0])
        maps: list[torch.Tensor] = []
        for c in range(probabilities.shape[0]):
            logp = torch.log(probabilities[c].clamp_min(_TINY))
            resampled = resample_channel(logp, work_shape, prepared.model_spacing,
                                         prepared.input_spacing, spec)
            del logp
            if keep_all:
                maps.append(resampled)
            if best_value is None:
                best_value = resampled.clone() if keep_all else resampled
                continue
            better = resampled > best_value
            best[better] = c
            del better
            torch.maximum(best_value, resampled, out=best_value)
        del best_value
        if split is not None:
            best = best.index_select(split[0], torch.from_numpy(split[1]))
        region = tuple(slice(a, b) for a, b in prepared.bbox)
        channels = np.zeros(prepared.shape_before_crop, dtype=index_type[1])
        channels[region] = best.numpy()
        channels = prepared.axis_map.backward(channels[None])[0]
        if not keep_all:
            return Prediction(np.ascontiguousarray(channels))
        probs = np.zeros((len(maps), *prepared.shape_before_crop), dtype=np.float32)
        probs[0] = 1.0  # background outside the crop, as nnU-Net
        stacked = softmax_inplace(torch.stack(maps))
        del maps
        probs[every_channel(region)] = stacked.numpy()
        del stacked
        return Prediction(np.ascontiguousarray(channels),
                          np.ascontiguousarray(prepared.axis_map.backward(probs)))


def load(path: Path, *, registry: Any = None, device: Any = None,
         configuration: str | None = None, folds: Any = None,
         checkpoint: str | None = None) -> NnunetModel:
    """The format's loader; its keyword options are :data:`OPTIONS` (checked by
    :func:`medseg.models.loading.format_options`)."""
    return NnunetModel(read_definition(Path(path), configuration, folds, checkpoint), device)
