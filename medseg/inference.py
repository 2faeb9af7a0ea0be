"""Segmentation of one volume with a model bundle, landing exactly on the input's grid.

Pipeline: exact reorientation to RAS, resampling to the bundle's spacing, intensity
normalisation, MONAI ``sliding_window_inference`` with Gaussian blending (optionally with
test-time mirroring), softmax, then per-class resampling of probabilities back to the input
grid with a running argmax (never all classes at full resolution at once), inverse
reorientation, and registry postprocessors. The output label map has the input's shape and
affine, voxel for voxel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medseg.bundle import Bundle
from medseg.device import autocast, resolve_device
from medseg.errors import InputError, MedsegError, PluginError
from medseg.preprocess import (
    inverse_transform,
    reorient_array,
    resize,
)
from medseg.qc.checks import QC, check_segmentation
from medseg.registry import Registry, load_registry
from medseg.volume import LabelMap, Volume


@dataclass
class InferenceSettings:
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
        counts = np.bincount(self.labels.data.ravel().astype(np.int64),
                             minlength=max(self.label_names) + 1)
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


def architecture_label(registry: Registry, name: str) -> str:
    """``architecture 'NAME' of plugin 'PLUGIN'`` for one-line plugin error messages."""
    return f"architecture {name!r} of plugin {registry.architectures.providers.get(name, '?')!r}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def build_architecture(registry: Registry, name: str, **kwargs: Any) -> torch.nn.Module:
    """Call a registered architecture's factory; a failure is a one-line :class:`PluginError`
    naming the architecture and the plugin that provides it."""
    spec = registry.architectures.get(name)
    try:
        net = spec.factory(**kwargs)
    except MedsegError:
        raise
    except Exception as exc:
        raise PluginError(f"{architecture_label(registry, name)} failed to build: "
                          f"{_short(exc)}") from None
    if not isinstance(net, torch.nn.Module):
        raise PluginError(f"{architecture_label(registry, name)} returned "
                          f"{type(net).__name__}, not a torch.nn.Module")
    return net


def plugin_call(label: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with any non-medseg exception turned into a one-line
    :class:`PluginError` starting with ``label`` (e.g. "loss 'x' of plugin 'y'")."""
    try:
        return fn(*args, **kwargs)
    except MedsegError:
        raise
    except Exception as exc:
        raise PluginError(f"{label} failed: {_short(exc)}") from None


def checked_forward(net: Callable, x: torch.Tensor, out_channels: int, label: str) -> Any:
    """``net(x)``, with an exception or logits not shaped ``B, out_channels, *x.spatial``
    reported as a one-line :class:`PluginError` naming ``label`` (the architecture/plugin)."""
    try:
        out = net(x)
    except MedsegError:
        raise
    except Exception as exc:
        raise PluginError(f"{label} failed on input of shape {tuple(x.shape)}: "
                          f"{_short(exc)}") from None
    logits = out[0] if isinstance(out, (list, tuple)) and out else out
    if isinstance(logits, torch.Tensor) and logits.ndim == x.ndim + 1:
        logits = logits[:, 0]  # deep supervision stacked on dim 1
    expected = (x.shape[0], out_channels, *x.shape[2:])
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise PluginError(f"{label} returned logits of shape {got} for input "
                          f"{tuple(x.shape)}, expected {expected}")
    return out


def _predictor(net: torch.nn.Module, mirror: bool, spatial_dims: int,
               check: tuple[int, str] | None = None) -> Callable:
    checked = [check is None]

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not checked[0] and check is not None:
            out = checked_forward(net, x, *check)
            checked[0] = True
        else:
            out = net(x)
        if isinstance(out, (list, tuple)):
            out = out[0]
        if out.ndim == x.ndim + 1:  # deep supervision stacked on dim 1
            out = out[:, 0]
        return torch.softmax(out.float(), dim=1)

    if not mirror:
        return forward

    axes = [(d,) for d in range(2, 2 + spatial_dims)]

    def mirrored(x: torch.Tensor) -> torch.Tensor:
        acc = forward(x)
        for ax in axes:
            acc += torch.flip(forward(torch.flip(x, ax)), ax)
        return acc / (1 + len(axes))

    return mirrored


def predict_probabilities(net: torch.nn.Module, image: torch.Tensor, bundle: Bundle,
                          settings: InferenceSettings, device: torch.device,
                          check_label: str | None = None) -> torch.Tensor:
    """Class probabilities ``K, *grid`` on the model grid (stitched on the CPU when needed).

    With ``check_label`` the first forward pass is checked (see :func:`checked_forward`)."""
    from monai.inferers import sliding_window_inference

    roi = settings.roi_size or bundle.patch_size
    roi = tuple(min(r, max(s, r)) for r, s in zip(roi, image.shape[1:], strict=True))
    n_out = len(bundle.labels) * int(np.prod(image.shape[1:]))
    stitch_on_cpu = device.type == "cuda" and n_out * 4 > 2 * 1024**3
    with torch.inference_mode(), autocast(device):
        probs = sliding_window_inference(
            image[None].to(device), roi_size=roi, sw_batch_size=settings.sw_batch_size,
            predictor=_predictor(net, settings.mirror, bundle.spatial_dims,
                                 None if check_label is None
                                 else (len(bundle.labels), check_label)),
            overlap=settings.overlap if settings.overlap is not None
            else float(bundle.inference.get("overlap", 0.25)), mode="gaussian", sigma_scale=0.125,
            padding_mode="constant", cval=0.0, sw_device=device,
            device=torch.device("cpu") if stitch_on_cpu else device,
        )
    return probs[0].float().cpu()


def labels_on_input_grid(probs: torch.Tensor, canonical_shape: Sequence[int],
                         transform: np.ndarray | None) -> np.ndarray:
    """Per-class resize of probabilities to the canonical input grid with a running argmax,
    then the inverse reorientation; returns channel indices ``X, Y[, Z]``."""
    best_p = resize(probs[0:1], canonical_shape)[0]
    best_c = torch.zeros(best_p.shape, dtype=torch.uint8)
    for c in range(1, probs.shape[0]):
        p = resize(probs[c : c + 1], canonical_shape)[0]
        better = p > best_p
        best_p = torch.where(better, p, best_p)
        best_c[better] = c
    out = best_c.numpy()[None]
    return reorient_array(out, inverse_transform(transform))[0]


class Segmenter:
    """Runs one model of any format (or several, merged into one label map) and lands the
    result on the input's exact grid, then applies registry postprocessors.

    ``model`` is a :class:`medseg.models.base.SegmentationModel`, a medseg :class:`Bundle`
    (wrapped), or a list of models whose label sets are disjoint (see :func:`merged_labels`).
    """

    def __init__(self, model: Any, settings: InferenceSettings | None = None,
                 registry: Registry | None = None) -> None:
        from medseg.models.medseg_bundle import MedsegBundleModel

        self.settings = settings or InferenceSettings()
        self.registry = registry or load_registry()
        self.device = resolve_device(self.settings.device)
        models = list(model) if isinstance(model, (list, tuple)) else [model]
        if not models:
            raise MedsegError("no model given")
        self.models = [MedsegBundleModel(m, self.registry, self.device)
                       if isinstance(m, Bundle) else m for m in models]
        self.label_names, self._luts = merged_labels([m.info for m in self.models])
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
    def bundle(self) -> Bundle | None:
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

    def memory_estimate(self, volume: Volume) -> int:
        """Bytes one segmentation of ``volume`` needs at its peak (estimate): the decoded input,
        the input-grid arrays, and per model the model-grid image, class probabilities and
        sliding-window accumulators (resampled from the input spacing to the model's)."""
        voxels = int(np.prod(volume.spatial_shape))
        channels = volume.n_channels
        total = volume.array.nbytes + voxels * self.input_bytes_per_voxel(channels)
        model_peak = 0.0
        for m in self.models:
            ratio = 1.0
            if m.info.spacing and len(m.info.spacing) == volume.spatial_ndim:
                ratio = float(np.prod(volume.spacing) / np.prod(m.info.spacing))
            model_voxels = voxels * ratio
            model_peak = max(model_peak, model_voxels * 4.0 * (channels + 2 * len(m.info.labels)
                                                               + 2))
        return int(total + model_peak)

    def check_memory(self, volume: Volume, where: str = "input") -> None:
        """Refuse, before allocating anything, a segmentation whose estimated working memory
        exceeds ``MEDSEG_MAX_MEMORY_BYTES``."""
        from medseg.limits import max_memory_bytes

        needed, limit = self.memory_estimate(volume), max_memory_bytes()
        if needed > limit:
            raise InputError(where, f"segmenting this {'x'.join(map(str, volume.spatial_shape))}"
                                    f" image needs about {needed} bytes, more than the limit "
                                    f"of {limit} bytes (MEDSEG_MAX_MEMORY_BYTES)")

    @property
    def segment_codes(self) -> dict[str, Any]:
        """Class name -> the models' own DICOM segment codes, where a model gives them
        (``details["segment_codes"]``); other classes are coded from their names."""
        from medseg.io.seg_codes import codes_from_config

        out = {}
        for m in self.models:
            for name, entry in dict(m.info.details.get("segment_codes") or {}).items():
                out[str(name)] = codes_from_config(entry, f"model {m.info.name!r}")
        return out

    def __call__(self, volume: Volume, where: str = "input",
                 progress: Callable[[str], None] | None = None, *,
                 modality: str | None = None) -> Segmentation:
        """Segment ``volume``; ``modality``: the input's as its DICOM header declares it (QC
        compares it with the models'; without it QC guesses it from the intensities)."""
        say = progress or (lambda _msg: None)
        settings = self.settings
        if settings.fast:
            settings = InferenceSettings(**{**settings.__dict__, "overlap": 0.1, "mirror": False})
        for m in self.models:
            check_input(volume, m.info, where)
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
                values = _run_postprocessor(spec, values, volume.spacing, params,
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
            labels = _run_postprocessor(spec, labels, volume.spacing, params,
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


def _run_postprocessor(spec, labels: np.ndarray, spacing, params: dict[str, Any],
                       plugin: str | None = None) -> np.ndarray:
    params = dict(params)
    classes = params.pop("classes", None)
    who = f"postprocessor {spec.name!r}" + (f" of plugin {plugin!r}" if plugin else "")
    try:
        out = spec.fn(labels, spacing=spacing, classes=classes, **params)
    except MedsegError:
        raise
    except Exception as exc:
        raise PluginError(f"{who} failed: {type(exc).__name__}: {exc}") from None
    out = np.asarray(out)
    if out.shape != labels.shape:
        raise PluginError(f"{who} returned shape {out.shape}, expected {labels.shape}")
    return out.astype(labels.dtype, copy=False)


def segment(volume: Volume, bundle: Any, settings: InferenceSettings | None = None,
            registry: Registry | None = None) -> Segmentation:
    """One-shot convenience: load the network (a bundle or any loaded model) and segment."""
    return Segmenter(bundle, settings, registry)(volume)
