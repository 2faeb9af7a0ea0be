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
    Preprocessing,
    inverse_transform,
    prepare,
    reorient_array,
    resize,
)
from medseg.registry import Registry, load_registry
from medseg.volume import LabelMap, Volume


@dataclass
class InferenceSettings:
    overlap: float = 0.25
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

    def volumes(self) -> list[dict[str, Any]]:
        """Per-class voxel counts and volumes in mL (background excluded)."""
        voxel_ml = float(np.prod(self.labels.spacing)) / 1000.0
        counts = np.bincount(self.labels.data.ravel().astype(np.int64),
                             minlength=max(self.label_names) + 1)
        return [{"label": v, "name": n, "voxels": int(counts[v]),
                 "volume_ml": round(float(counts[v]) * voxel_ml, 4)}
                for v, n in sorted(self.label_names.items()) if v != 0]


def check_input(volume: Volume, bundle: Bundle, where: str = "input") -> None:
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
            overlap=settings.overlap, mode="gaussian", sigma_scale=0.125,
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
    """Loads a bundle once and segments volumes with it."""

    def __init__(self, bundle: Bundle, settings: InferenceSettings | None = None,
                 registry: Registry | None = None) -> None:
        self.bundle = bundle
        self.settings = settings or InferenceSettings()
        self.registry = registry or load_registry()
        self.device = resolve_device(self.settings.device)
        arch = str(bundle.config["architecture"]["name"])
        self.registry.architectures.get(arch)  # unknown name: the usual error listing names
        self.arch_label = architecture_label(self.registry, arch)
        try:
            self.net = bundle.load_network(self.registry, self.device)
        except MedsegError:
            raise
        except Exception as exc:
            raise PluginError(f"{self.arch_label} failed to build or load its weights: "
                              f"{_short(exc)}") from None
        self._checked = False
        pp = list(bundle.inference.get("postprocessors", [])) + list(self.settings.postprocessors)
        self.postprocessors = [(self.registry.postprocessors.get(n), dict(p or {}))
                               for n, p in (_pp_item(x) for x in pp)]

    def preprocessing(self) -> Preprocessing:
        pre = self.bundle.preprocessing
        if self.settings.fast and pre.target_spacing is not None:
            return Preprocessing(tuple(s * 1.6 for s in pre.target_spacing), pre.intensity,
                                 pre.orientation)
        return pre

    def __call__(self, volume: Volume, where: str = "input",
                 progress: Callable[[str], None] | None = None) -> Segmentation:
        check_input(volume, self.bundle, where)
        say = progress or (lambda _msg: None)
        say("preprocessing")
        prepared = prepare(volume, self.preprocessing())
        settings = self.settings
        if settings.fast:
            settings = InferenceSettings(**{**settings.__dict__, "overlap": 0.1, "mirror": False})
        say("sliding-window inference")
        probs = predict_probabilities(self.net, prepared.image, self.bundle, settings,
                                      self.device, None if self._checked else self.arch_label)
        self._checked = True
        say("resampling to the input grid")
        inverse = inverse_transform(prepared.transform)
        prob_volume = None
        if self.settings.probabilities:  # every class at full resolution was asked for
            full = resize(probs, prepared.canonical_shape)
            channels = reorient_array(full.argmax(0).to(torch.uint8).numpy()[None], inverse)[0]
            prob_volume = Volume(reorient_array(full.numpy(), inverse).astype(np.float32),
                                 volume.affine)
        else:
            channels = labels_on_input_grid(probs, prepared.canonical_shape, prepared.transform)
        lut = np.asarray(self.bundle.label_values, dtype=np.uint16)
        labels = lut[channels].astype(np.uint8 if lut.max() < 256 else np.uint16)
        for spec, params in self.postprocessors:
            say(f"postprocessing: {spec.name}")
            labels = _run_postprocessor(spec, labels, volume.spacing, params,
                                        self.registry.postprocessors.providers.get(spec.name))
        return Segmentation(LabelMap(labels[None], volume.affine), self.bundle.label_names,
                            prob_volume)


def _pp_item(item: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, (list, tuple)) and len(item) == 2:
        return str(item[0]), dict(item[1] or {})
    if isinstance(item, dict) and "name" in item:
        return str(item["name"]), dict(item.get("params", {}))
    raise MedsegError(f"bad postprocessor entry {item!r}")


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


def segment(volume: Volume, bundle: Bundle, settings: InferenceSettings | None = None,
            registry: Registry | None = None) -> Segmentation:
    """One-shot convenience: load the network and segment ``volume``."""
    return Segmenter(bundle, settings, registry)(volume)
