"""medseg's own bundle (``config.json`` + ``weights.pt``) as a :class:`SegmentationModel`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import MedsegError, PluginError, exception_summary
from medseg.models.base import ModelInfo, Prediction
from medseg.models.medseg_bundle.bundle import CONFIG_NAME, Bundle, load_bundle
from medseg.models.medseg_bundle.predict import labels_on_input_grid, predict_probabilities
from medseg.ops.device import resolve_device
from medseg.ops.plugin_calls import architecture_label
from medseg.ops.preprocess import (
    Prepared,
    Preprocessing,
    inverse_transform,
    prepare,
    reorient_array,
    resize,
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
