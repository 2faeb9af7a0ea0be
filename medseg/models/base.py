"""The one protocol every model format implements, and what it reports about itself.

A format (medseg bundle, nnU-Net v2 result folder, MONAI bundle, a plugin's own) turns a folder
into a :class:`SegmentationModel`. The generic :class:`medseg.engine.segmenter.Segmenter` knows only
this protocol:

1. ``prepare(volume, settings)`` brings the input onto the model's grid (orientation, crop,
   resampling, normalisation, as the format's own files say) and keeps whatever is needed to
   map a prediction back;
2. ``predict(prepared, settings)`` returns class probabilities ``K, *model_grid`` (float32,
   channel ``i`` is the class ``info.label_values[i]``);
3. ``restore(prepared, probabilities, settings)`` maps them back onto the input's exact grid
   and orientation and returns a :class:`Prediction` (per-voxel channel indices, and the full
   probability maps only when ``settings.probabilities`` asks for them).

A promptable model (``info.prompts`` not empty) follows the same protocol and finds the
prompts in ``settings.prompts``, already checked against the input and in its voxel indices:
it predicts ``background, object`` probabilities on whatever crop it chooses around them and
restores them onto the whole input grid.

Keeping the three apart lets each format reproduce its tool's pipeline while the segmenter owns
checks, label values, postprocessing, merging of several models, outputs and QC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import torch

    from medseg.prompts.types import Prompts
    from medseg.volume import Volume


@dataclass
class InferenceSettings:
    """How the engine runs a model (the ``medseg segment`` flags that change the pipeline)."""

    #: sliding-window overlap; None = the model's own default (bundle config, nnU-Net 0.5)
    overlap: float | None = None
    sw_batch_size: int = 2
    mirror: bool = False
    fast: bool = False
    roi_size: tuple[int, ...] | None = None
    #: (name, params) pairs applied in order after argmax
    postprocessors: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    probabilities: bool = False
    device: str | None = None
    #: a promptable model's prompts (:class:`medseg.prompts.Prompts`, voxel indices of the
    #: input); None for every other model
    prompts: Prompts | None = None



@dataclass(frozen=True)
class ModelInfo:
    """What a model says about itself: shown by ``medseg info``/``medseg models`` and the UI,
    and used for input checks, label values and quality flags."""

    name: str
    #: registered model-format name, e.g. ``medseg``, ``nnunet_v2``, ``monai_bundle``
    format: str
    #: class name -> label value, background (0) included
    labels: Mapping[str, int]
    spatial_dims: int = 3
    in_channels: int = 1
    #: target voxel spacing in mm on the model grid (None: the input's own)
    spacing: tuple[float, ...] | None = None
    patch_size: tuple[int, ...] | None = None
    #: e.g. "CT", "MR"; None when the model does not say
    modality: str | None = None
    channel_names: tuple[str, ...] = ()
    #: folds or ensemble members that will run (nnU-Net: ("0", "1", ...))
    folds: tuple[str, ...] = ()
    #: where it came from: the folder, and the trainer/plans/configuration or bundle version
    source: str = ""
    #: format-specific facts worth showing (configuration, normalisation schemes, trust...)
    details: Mapping[str, Any] = field(default_factory=dict)
    #: what the training data looked like (volume ranges, intensity statistics, extent),
    #: used by quality checks; None when the format does not record it
    training_record: Mapping[str, Any] | None = None
    #: prompt kinds a promptable model takes (of ``point``, ``box``, ``mask``; see
    #: :mod:`medseg.prompts`); empty for a model that segments without prompts
    prompts: tuple[str, ...] = ()
    #: how many answers to one prompt a promptable model offers (``Prompts.answer`` picks
    #: one; the first is its default): a click can mean a pocket or what surrounds it
    answers: int = 1

    @property
    def label_values(self) -> list[int]:
        """Label value of each output channel (channel i -> value), ascending."""
        return sorted(int(v) for v in self.labels.values())

    @property
    def label_names(self) -> dict[int, str]:
        return {int(v): str(k) for k, v in self.labels.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "format": self.format,
            "labels": {str(k): int(v) for k, v in sorted(self.labels.items(),
                                                         key=lambda kv: kv[1])},
            "spatial_dims": self.spatial_dims, "in_channels": self.in_channels,
            "spacing_mm": list(self.spacing) if self.spacing else None,
            "patch_size": list(self.patch_size) if self.patch_size else None,
            "modality": self.modality, "channel_names": list(self.channel_names),
            "folds": list(self.folds), "source": self.source, "details": dict(self.details),
            "prompts": list(self.prompts), "answers": self.answers,
        }


@dataclass
class Prediction:
    """A model's answer on the input's exact grid and orientation."""

    #: ``X, Y[, Z]`` integer output-channel index per voxel (map through ``label_values``)
    channels: np.ndarray
    #: ``K, X, Y[, Z]`` float32 class probabilities, only when they were asked for
    probabilities: np.ndarray | None = None


@runtime_checkable
class SegmentationModel(Protocol):
    """A loaded model of any format (see the module docstring)."""

    info: ModelInfo

    def prepare(self, volume: Volume, settings: InferenceSettings) -> Any:
        """The input on the model grid plus what ``restore`` needs to map back."""

    def predict(self, prepared: Any, settings: InferenceSettings) -> torch.Tensor:
        """Class probabilities ``K, *model_grid`` (float32, on the CPU)."""

    def restore(self, prepared: Any, probabilities: torch.Tensor,
                settings: InferenceSettings) -> Prediction:
        """Probabilities back onto the input's grid: channel indices (and probabilities when
        ``settings.probabilities``)."""
