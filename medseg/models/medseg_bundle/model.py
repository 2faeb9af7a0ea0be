"""medseg's own bundle (``config.json`` + ``weights.pt``) as a :class:`SegmentationModel`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import InputError, MedsegError, PluginError, exception_summary
from medseg.io.limits import max_memory_bytes
from medseg.models.base import ModelInfo, Prediction
from medseg.models.medseg_bundle.bundle import CONFIG_NAME, WEIGHTS_NAME, Bundle, load_bundle
from medseg.models.medseg_bundle.predict import labels_on_input_grid, predict_probabilities
from medseg.models.medseg_bundle.schema import CHANNEL_KEYS, network_bytes_estimate
from medseg.models.memory_budget import Footprint, conv_net_activations, monai_tiles, over_limit
from medseg.ops.device import resolve_device
from medseg.ops.plugin_calls import architecture_label
from medseg.ops.preprocess import (
    Prepared,
    Preprocessing,
    canonical_transform,
    inverse_transform,
    prepare,
    reorient_array,
    resize,
    target_shape,
)
from medseg.registry import Registry, load_registry

FORMAT = "medseg"


def sniff_medseg_bundle(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / CONFIG_NAME).is_file()


def bundle_info(bundle: Bundle) -> ModelInfo:
    cfg = bundle.config
    pre = bundle.preprocessing
    training = cfg.get("training", {}) if isinstance(cfg.get("training"), dict) else {}
    return ModelInfo(
        name=bundle.name, format=FORMAT, labels=bundle.labels,
        spatial_dims=bundle.spatial_dims, in_channels=bundle.in_channels,
        spacing=pre.target_spacing, patch_size=bundle.patch_size,
        modality=cfg.get("modality") or ("CT" if pre.intensity.get("scheme") == "ct" else None),
        source=str(bundle.path),
        details={"architecture": cfg["architecture"].get("name"),
                 "intensity": pre.intensity.get("scheme"),
                 "command": training.get("command", ""),
                 **({"segment_codes": cfg["segment_codes"]} if cfg.get("segment_codes")
                    else {})},
        training_record=cfg.get("training_record"),
    )


def describe_medseg_bundle(path: Path) -> ModelInfo:
    return bundle_info(load_bundle(path))


def first_width(params: dict[str, Any]) -> int:
    """The first channel count among the architecture parameters (0 when none is given)."""
    for key in CHANNEL_KEYS:
        value = params.get(key)
        if isinstance(value, list) and value and isinstance(value[0], int):
            return int(value[0])
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
    return 0


def check_network_memory(bundle: Bundle) -> None:
    """Refuse, before it is built or its weights read, a network whose weights (estimated
    from its channel counts, or the size of its weights file, whichever is larger) exceed
    ``MEDSEG_MAX_MEMORY_BYTES``."""
    params = bundle.config["architecture"].get("params") or {}
    estimate = network_bytes_estimate(params, bundle.in_channels, len(bundle.labels),
                                      bundle.spatial_dims)
    weights = bundle.path / str(bundle.config.get("weights", {}).get("file", WEIGHTS_NAME))
    try:
        size = weights.stat().st_size
    except OSError:
        size = 0  # missing: load_weights says so
    needed, limit = max(estimate, size), max_memory_bytes()
    if needed > limit:
        raise InputError(bundle.path / CONFIG_NAME, f"the network this bundle describes needs "
                                                    f"{over_limit(needed, limit)}")


def model_grid(volume, pre: Preprocessing) -> tuple[int, ...]:
    """The shape :func:`medseg.ops.preprocess.prepare` resamples ``volume`` to, from its header:
    the axes turned to RAS, then resampled to the target spacing."""
    shape, spacing = list(volume.spatial_shape), [float(s) for s in volume.spacing]
    transform = canonical_transform(volume)
    if transform is not None:
        turned, turned_spacing = list(shape), list(spacing)
        for src, (dst, _flip) in enumerate(transform):
            turned[int(dst)], turned_spacing[int(dst)] = shape[src], spacing[src]
        shape, spacing = turned, turned_spacing
    return target_shape(shape, spacing, pre.target_spacing)


class MedsegBundleModel:
    """Reorient to RAS, resample to the bundle spacing, normalise, sliding window with
    Gaussian blending; back per class with a running argmax (see :mod:`.predict`)."""

    def __init__(self, bundle: Bundle, registry: Registry | None = None,
                 device: str | torch.device | None = None) -> None:

        self.bundle = bundle
        self.registry = registry or load_registry()
        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        arch = str(bundle.config["architecture"]["name"])
        self.registry.architectures.get(arch)  # unknown name: the usual error listing names
        self.arch_label = architecture_label(self.registry, arch)
        check_network_memory(bundle)
        try:
            self.net = bundle.load_network(self.registry, self.device)
        except MedsegError:
            raise
        except Exception as exc:
            raise PluginError(f"{self.arch_label} failed to build or load its weights: "
                              f"{exception_summary(exc)}") from None
        self.info = bundle_info(bundle)
        self._checked = False
        self.postprocessors = list(bundle.inference.get("postprocessors", []))

    def preprocessing(self, fast: bool) -> Preprocessing:
        pre = self.bundle.preprocessing
        if fast and pre.target_spacing is not None:
            return Preprocessing(tuple(s * 1.6 for s in pre.target_spacing), pre.intensity,
                                 pre.orientation)
        return pre

    def prepare(self, volume, settings) -> Prepared:
        return prepare(volume, self.preprocessing(settings.fast))

    def tile_footprint(self, volume, settings) -> Footprint:
        """Memory of MONAI's sliding window on ``volume`` beyond the model-grid arrays:
        padding to the patch, window buffers and network activations (an estimate from the
        first channel count; see :mod:`medseg.models.memory_budget`)."""
        b = self.bundle
        roi = tuple(settings.roi_size or b.patch_size)
        classes = len(b.labels)
        width = first_width(b.config["architecture"].get("params") or {})
        return monai_tiles(model_grid(volume, self.preprocessing(settings.fast)), roi,
                           b.in_channels, classes, settings.sw_batch_size,
                           conv_net_activations([width], roi, b.in_channels, classes),
                           self.device.type == "cpu",
                           mirror=bool(settings.mirror and not settings.fast),
                           source=str(b.path / CONFIG_NAME))

    def predict(self, prepared: Prepared, settings) -> torch.Tensor:

        probs = predict_probabilities(self.net, prepared.image, self.bundle, settings,
                                      self.device, None if self._checked else self.arch_label)
        self._checked = True
        return probs

    def restore(self, prepared: Prepared, probabilities: torch.Tensor, settings) -> Prediction:

        if not settings.probabilities:
            return Prediction(labels_on_input_grid(probabilities, prepared.canonical_shape,
                                                   prepared.transform))
        inverse = inverse_transform(prepared.transform)
        full = resize(probabilities, prepared.canonical_shape)
        channels = reorient_array(full.argmax(0).to(torch.uint8).numpy()[None], inverse)[0]
        return Prediction(channels, reorient_array(full.numpy(), inverse).astype(np.float32))


def load_medseg_bundle(path: Path, *, registry: Registry | None = None,
                       device: Any = None, **_options: Any) -> MedsegBundleModel:
    return MedsegBundleModel(load_bundle(path, registry), registry, device)
