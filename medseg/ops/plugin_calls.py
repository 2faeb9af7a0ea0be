"""Calling plugin code with its failures reported as one line.

A plugin's architecture factory, loss, postprocessor or forward pass may raise anything; these
helpers turn such a failure into a :class:`~medseg.errors.PluginError` that names the component
and the plugin providing it, and check what came back (a module, logits of the right shape, a
label map of the input's shape).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from medseg.errors import MedsegError, PluginError, exception_summary
from medseg.registry import Registry


def architecture_label(registry: Registry, name: str) -> str:
    """``architecture 'NAME' of plugin 'PLUGIN'`` for one-line plugin error messages."""
    return f"architecture {name!r} of plugin {registry.architectures.providers.get(name, '?')!r}"


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
                          f"{exception_summary(exc)}") from None
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
        raise PluginError(f"{label} failed: {exception_summary(exc)}") from None


def checked_forward(net: Callable, x: torch.Tensor, out_channels: int, label: str) -> Any:
    """``net(x)``, with an exception or logits not shaped ``B, out_channels, *x.spatial``
    reported as a one-line :class:`PluginError` naming ``label`` (the architecture/plugin)."""
    try:
        out = net(x)
    except MedsegError:
        raise
    except Exception as exc:
        raise PluginError(f"{label} failed on input of shape {tuple(x.shape)}: "
                          f"{exception_summary(exc)}") from None
    logits = out[0] if isinstance(out, (list, tuple)) and out else out
    if isinstance(logits, torch.Tensor) and logits.ndim == x.ndim + 1:
        logits = logits[:, 0]  # deep supervision stacked on dim 1
    expected = (x.shape[0], out_channels, *x.shape[2:])
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise PluginError(f"{label} returned logits of shape {got} for input "
                          f"{tuple(x.shape)}, expected {expected}")
    return out


def run_postprocessor(spec, labels: np.ndarray, spacing, params: dict[str, Any],
                      plugin: str | None = None) -> np.ndarray:
    """``spec.fn(labels, spacing=, classes=, **params)``, checked to return a label map of the
    same shape (cast back to ``labels``' type)."""
    params = dict(params)
    classes = params.pop("classes", None)
    who = f"postprocessor {spec.name!r}" + (f" of plugin {plugin!r}" if plugin else "")
    try:
        out = spec.fn(labels, spacing=spacing, classes=classes, **params)
    except MedsegError:
        raise
    except Exception as exc:
        raise PluginError(f"{who} failed: {exception_summary(exc)}") from None
    out = np.asarray(out)
    if out.shape != labels.shape:
        raise PluginError(f"{who} returned shape {out.shape}, expected {labels.shape}")
    return out.astype(labels.dtype, copy=False)
