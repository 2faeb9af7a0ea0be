"""The engine: one segmenter over the model protocol of :mod:`medseg.models.base`.

:class:`Segmenter` runs one model of any format (or several, merged into one label map): it
checks the input against the model, bounds the working memory, lets the model prepare the
volume onto its grid, predict and restore the prediction onto the input's exact grid, maps
channels to label values, runs the model's and the user's postprocessors, and attaches the
quality flag (:mod:`medseg.qc`). It knows no format: a model is any
:class:`~medseg.models.base.SegmentationModel` (use :func:`medseg.models.loading.load_model`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from medseg.errors import InputError, MedsegError
from medseg.io.limits import max_memory_bytes
from medseg.io.seg_codes import codes_from_config
from medseg.models.base import InferenceSettings, SegmentationModel
from medseg.ops.counts import label_counts
from medseg.ops.device import resolve_device
from medseg.ops.plugin_calls import run_postprocessor
from medseg.prompts.resolve import check_offered, check_prompts, resolve_prompts
from medseg.prompts.types import Prompts, PromptSpec
from medseg.qc.checks import QC, check_segmentation
from medseg.registry import Registry, load_registry
from medseg.volume import LabelMap, Volume


@dataclass
class Segmentation:
    labels: LabelMap
    label_names: dict[int, str]
    probabilities: Volume | None = None
    #: quality flag against each model's training record (see :mod:`medseg.qc`)
    qc: QC | None = None

    def volumes(self) -> list[dict[str, Any]]:
        """Per-class voxel counts and volumes in mL (background excluded)."""
        voxel_ml = float(np.prod(self.labels.spacing)) / 1000.0
        counts = label_counts(self.labels.data, minlength=max(self.label_names) + 1)
        return [{"label": v, "name": n, "voxels": int(counts[v]),
                 "volume_ml": round(float(counts[v]) * voxel_ml, 4)}
                for v, n in sorted(self.label_names.items()) if v != 0]


def check_input(volume: Volume, bundle: Any, where: str = "input") -> None:
    """The image fits the model (a :class:`Bundle` or a ``ModelInfo``): dimensions, channels,
    finite values."""
    if volume.spatial_ndim != bundle.spatial_dims:
        raise InputError(where, f"model {bundle.name!r} is {bundle.spatial_dims}D but the image "
                                f"is {volume.spatial_ndim}D")
    if volume.n_channels != bundle.in_channels:
        raise InputError(where, f"model {bundle.name!r} expects {bundle.in_channels} channel(s),"
                                f" the image has {volume.n_channels}")
    if volume.array.dtype.kind == "f" and not np.all(np.isfinite(volume.array)):
        raise InputError(where, "image contains NaN or infinite voxels")


class Segmenter:
    """Runs one model of any format (or several, merged into one label map) and lands the
    result on the input's exact grid, then applies registry postprocessors.

    ``model`` is a :class:`medseg.models.base.SegmentationModel`, or a list of models whose
    label sets are disjoint (see :func:`merged_labels`).
    """

    def __init__(self, model: SegmentationModel | Sequence[SegmentationModel],
                 settings: InferenceSettings | None = None,
                 registry: Registry | None = None, *,
                 rename: dict[str, str] | None = None) -> None:
        """``rename``: class name -> the name to show and write instead (e.g. ``--label``
        naming what a promptable model's ``object`` is)."""
        self.settings = settings or InferenceSettings()
        self.registry = registry or load_registry()
        self.device = resolve_device(self.settings.device)
        models = list(model) if isinstance(model, (list, tuple)) else [model]
        if not models:
            raise MedsegError("no model given")
        for m in models:
            if not isinstance(m, SegmentationModel):
                raise MedsegError(f"{type(m).__name__} is not a segmentation model (load one "
                                  "with medseg.models.load_model)")
        self.models = list(models)
        self.label_names, self._luts = merged_labels([m.info for m in self.models])
        if rename:
            self.label_names = {v: rename.get(n, n) for v, n in self.label_names.items()}
        # a model's own postprocessors run on its own classes before merging (their "classes"
        # are the model's label values, mapped to the merged ones); the user's run after
        self._model_postprocessors = [
            [(self.registry.postprocessors.get(n), _merged_classes(p, m.info, lut))
             for n, p in (_pp_item(x) for x in getattr(m, "postprocessors", []))]
            for m, lut in zip(self.models, self._luts, strict=True)]
        self.postprocessors = [(self.registry.postprocessors.get(n), dict(p or {}))
                               for n, p in (_pp_item(x) for x in self.settings.postprocessors)]

    @property
    def info(self):
        """The (first) model's :class:`~medseg.models.base.ModelInfo`."""
        return self.models[0].info

    @property
    def name(self) -> str:
        return "+".join(m.info.name for m in self.models)

    @property
    def bundle(self) -> Any:
        """The medseg bundle when the (single) model is one."""
        return getattr(self.models[0], "bundle", None) if len(self.models) == 1 else None

    @property
    def labels(self) -> dict[str, int]:
        return {n: v for v, n in self.label_names.items()}

    def input_bytes_per_voxel(self, channels: int = 1) -> float:
        """Working memory per input voxel on the input grid: a float32 copy per channel, the
        running argmax (best probability and class), the label map, and every class's
        probability map when they are asked for."""
        classes = len(self.label_names)
        return 4.0 * channels + 10.0 + (4.0 * classes if self.settings.probabilities else 0.0)

    def tile_footprints(self, volume: Volume) -> list[Any]:
        """Per model, what its sliding window needs on ``volume`` beyond the model-grid arrays
        (padding to the patch, tile buffers, activations: a
        :class:`~medseg.models.memory_budget.Footprint`), or None where a model does not say."""
        return [m.tile_footprint(volume, self.settings) if hasattr(m, "tile_footprint")
                else None for m in self.models]

    def memory_estimate(self, volume: Volume) -> int:
        """Bytes one segmentation of ``volume`` needs at its peak (estimate): the decoded input,
        the input-grid arrays, and per model the model-grid image, class probabilities and
        sliding-window accumulators (resampled from the input spacing to the model's), plus
        the model's tile footprint (padding to its patch, tiles, activations)."""
        voxels = int(np.prod(volume.spatial_shape))
        channels = volume.n_channels
        total = volume.array.nbytes + voxels * self.input_bytes_per_voxel(channels)
        model_peak = 0.0
        for m, tiles in zip(self.models, self.tile_footprints(volume), strict=True):
            own = getattr(m, "memory_estimate", None)  # a format that knows its own peak
            if callable(own):
                model_peak = max(model_peak, float(own(volume)) + (tiles.total if tiles else 0))
                continue
            ratio = 1.0
            if m.info.spacing and len(m.info.spacing) == volume.spatial_ndim:
                ratio = float(np.prod(volume.spacing) / np.prod(m.info.spacing))
            model_voxels = voxels * ratio
            model_peak = max(model_peak, model_voxels * 4.0 * (channels + 2 * len(m.info.labels)
                                                               + 2) + (tiles.total if tiles else 0))
        return int(total + model_peak)

    def check_memory(self, volume: Volume, where: str = "input") -> None:
        """Refuse, before allocating anything, a segmentation whose estimated working memory
        exceeds ``MEDSEG_MAX_MEMORY_BYTES``; the line ends with the largest model's tile
        footprint (its file, patch, grid and buffers)."""
        needed, limit = self.memory_estimate(volume), max_memory_bytes()
        if needed > limit:
            tiles = [t for t in self.tile_footprints(volume) if t is not None]
            detail = f"; {max(tiles, key=lambda t: t.total).describe()}" if tiles else ""
            raise InputError(where, f"segmenting this {'x'.join(map(str, volume.spatial_shape))}"
                                    f" image needs about {needed} bytes, more than the limit "
                                    f"of {limit} bytes (MEDSEG_MAX_MEMORY_BYTES){detail}")

    @property
    def promptable(self) -> bool:
        """Whether a model here segments what it is pointed at (it needs prompts)."""
        return any(m.info.prompts for m in self.models)

    def _with_prompts(self, settings: InferenceSettings, volume: Volume, where: str,
                      prompts: Prompts | PromptSpec | None) -> InferenceSettings:
        """``settings`` carrying the prompts, checked against the image and the models."""
        wanted = [m for m in self.models if m.info.prompts]
        if not prompts:
            if wanted:
                raise InputError(where, f"model {wanted[0].info.name!r} segments what it is "
                                        "pointed at: give prompts (--point, --box or "
                                        "--prompts)")
            return settings
        if not wanted:
            raise InputError(where, f"model {self.name!r} takes no prompts")
        resolved = resolve_prompts(prompts, volume, where) if isinstance(prompts, PromptSpec) \
            else check_prompts(prompts, volume, where)
        for m in wanted:
            extra = resolved.kinds() - set(m.info.prompts)
            if extra or not resolved.kinds() - {"mask"}:
                given = ", ".join(sorted(extra)) or "a mask alone"
                raise InputError(where, f"model {m.info.name!r} takes "
                                        f"{', '.join(m.info.prompts)} prompts (a mask only with"
                                        f" points or boxes), not {given}")
            check_offered(resolved.answer, m.info.answers, m.info.name, where)
        return replace(settings, prompts=resolved)

    @property
    def segment_codes(self) -> dict[str, Any]:
        """Class name -> the models' own DICOM segment codes, where a model gives them
        (``details["segment_codes"]``); other classes are coded from their names."""
        out = {}
        for m in self.models:
            for name, entry in dict(m.info.details.get("segment_codes") or {}).items():
                out[str(name)] = codes_from_config(entry, f"model {m.info.name!r}")
        return out

    def __call__(self, volume: Volume, where: str = "input",
                 progress: Callable[[str], None] | None = None, *,
                 modality: str | None = None,
                 prompts: Prompts | PromptSpec | None = None) -> Segmentation:
        """Segment ``volume``; ``modality``: the input's as its DICOM header declares it (QC
        compares it with the models'; without it QC guesses it from the intensities);
        ``prompts``: what a promptable model segments (voxel :class:`Prompts`, or a
        :class:`PromptSpec` in world mm or voxels, checked here against ``volume``)."""
        say = progress or (lambda _msg: None)
        settings = self.settings
        if settings.fast:
            settings = InferenceSettings(**{**settings.__dict__, "overlap": 0.1, "mirror": False})
        for m in self.models:
            check_input(volume, m.info, where)
        settings = self._with_prompts(settings, volume, where, prompts)
        self.check_memory(volume, where)
        labels: np.ndarray | None = None
        prob_maps: list[np.ndarray] = []
        for model, lut, own_pp in zip(self.models, self._luts, self._model_postprocessors,
                                      strict=True):
            tag = f"{model.info.name}: " if len(self.models) > 1 else ""
            say(f"{tag}preprocessing")
            prepared = model.prepare(volume, settings)
            say(f"{tag}sliding-window inference")
            probs = model.predict(prepared, settings)
            say(f"{tag}resampling to the input grid")
            pred = model.restore(prepared, probs, settings)
            del prepared, probs
            channels = np.asarray(pred.channels)
            if channels.dtype.kind not in "ui":
                channels = channels.astype(np.int64)
            values = lut[channels]  # a small lookup table indexed by the channel array as is
            for spec, params in own_pp:
                say(f"{tag}postprocessing: {spec.name}")
                values = run_postprocessor(spec, values, volume.spacing, params,
                                            self.registry.postprocessors.providers.get(spec.name))
            if labels is None:
                labels = values
            else:  # an earlier model's foreground is kept where two models claim a voxel
                free = labels == 0
                labels[free] = values[free]
            if pred.probabilities is not None:
                prob_maps.append(pred.probabilities if not prob_maps
                                 else pred.probabilities[1:])
        assert labels is not None
        top = max(self.label_names)
        labels = labels.astype(np.uint8 if top < 256 else np.uint16, copy=False)
        for spec, params in self.postprocessors:
            say(f"postprocessing: {spec.name}")
            labels = run_postprocessor(spec, labels, volume.spacing, params,
                                        self.registry.postprocessors.providers.get(spec.name))
        prob_volume = None
        if settings.probabilities and prob_maps:
            prob_volume = Volume(np.concatenate(prob_maps).astype(np.float32), volume.affine)
        label_map = LabelMap(labels[None], volume.affine)
        qc = check_segmentation(label_map, self.label_names, volume,
                                [m.info for m in self.models], input_modality=modality)
        return Segmentation(label_map, self.label_names, prob_volume, qc)


def merged_labels(infos: Sequence[Any]) -> tuple[dict[int, str], list[np.ndarray]]:
    """One label map from several models: names are kept, values assigned in model order.

    A single model keeps its own label values. For several, class names must be disjoint
    (background aside); returns the merged ``value -> name`` and, per model, a lookup table
    from its output channel to the merged value.
    """
    if len(infos) == 1:
        info = infos[0]
        return dict(info.label_names), [_lut(info.label_values)]
    names: dict[int, str] = {0: "background"}
    owner: dict[str, str] = {}
    luts = []
    for info in infos:
        lut = []
        for value in info.label_values:
            name = info.label_names[value]
            if value == 0:
                lut.append(0)
                continue
            if name in owner:
                raise MedsegError(f"models {owner[name]!r} and {info.name!r} both segment "
                                  f"{name!r}; merged models need disjoint label sets")
            owner[name] = info.name
            new = len(names)
            names[new] = name
            lut.append(new)
        luts.append(lut)
    top = len(names) - 1
    return names, [_lut(lut, top) for lut in luts]


def _lut(values: Sequence[int], top: int | None = None) -> np.ndarray:
    """Channel -> label value table in the smallest unsigned type that holds ``top`` (default:
    its own largest value); the label map is built by indexing it, so it has that type."""
    top = max(values, default=0) if top is None else top
    return np.asarray(values, dtype=np.uint8 if top < 256 else np.uint16)


def _pp_item(item: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, (list, tuple)) and len(item) == 2:
        return str(item[0]), dict(item[1] or {})
    if isinstance(item, dict) and "name" in item:
        return str(item["name"]), dict(item.get("params", {}))
    raise MedsegError(f"bad postprocessor entry {item!r}")


def _merged_classes(params: dict[str, Any] | None, info, lut: np.ndarray) -> dict[str, Any]:
    """A model's postprocessor parameters with ``classes`` (the model's own label values, or
    all its classes when absent) as label values of the merged label map."""
    params = dict(params or {})
    own = info.label_values
    wanted = params.get("classes")
    wanted = [v for v in own if v != 0] if wanted is None else [int(v) for v in wanted]
    params["classes"] = [int(lut[own.index(v)]) for v in wanted if v in own]
    return params


def segment(volume: Volume, model: SegmentationModel, settings: InferenceSettings | None = None,
            registry: Registry | None = None) -> Segmentation:
    """One-shot convenience: segment ``volume`` with a loaded model."""
    return Segmenter(model, settings, registry)(volume)
