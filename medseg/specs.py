"""Small spec objects that plugins return from ``medseg_register_*`` hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ArchitectureSpec:
    """A network. ``factory(spatial_dims=, in_channels=, out_channels=, **params)`` returns an
    ``nn.Module`` mapping ``B, C_in, *spatial`` to logits ``B, C_out, *spatial``."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    spatial_dims: tuple[int, ...] = (2, 3)
    #: every spatial size must be divisible by this (1 = any size)
    size_divisor: int = 16


@dataclass(frozen=True)
class LossSpec:
    """A loss. ``factory(num_classes=, **params)`` returns a callable
    ``loss(logits: B,C,*spatial, target: B,1,*spatial int) -> scalar tensor``."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PostprocessorSpec:
    """A pure function ``fn(labels, *, spacing, classes, **params) -> labels`` on an integer
    label array ``X, Y[, Z]`` (``classes``: the label values to act on; None = all)."""

    name: str
    fn: Callable[..., Any]
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReaderSpec:
    """An image reader. ``sniff(path) -> bool`` recognises the content (not only the name);
    ``read(path, **options) -> Volume``. ``extensions`` helps error messages and the UI."""

    name: str
    sniff: Callable[[Path], bool]
    read: Callable[..., Any]
    description: str = ""
    extensions: tuple[str, ...] = ()
    #: higher runs first when several readers recognise a file
    priority: int = 0


@dataclass(frozen=True)
class MetricSpec:
    """A per-class metric ``fn(pred: bool array, ref: bool array, spacing) -> float``."""

    name: str
    fn: Callable[..., float]
    description: str = ""
    higher_is_better: bool = True
    unit: str = ""


@dataclass(frozen=True)
class ModelFormatSpec:
    """A model format (a folder layout another tool writes, or medseg's own bundle).

    ``sniff(path) -> bool`` recognises a folder by its content; ``describe(path) -> ModelInfo``
    reads only metadata (no weights; used by ``medseg models`` and the UI);
    ``load(path, *, registry, device, **options) -> SegmentationModel`` builds the runnable
    model (:mod:`medseg.models.base`). Options a format does not take are refused by the
    engine before ``load`` is called; ``options`` lists the ones it takes (for example
    ``configuration``, ``folds``, ``checkpoint``, ``trust``).
    """

    name: str
    sniff: Callable[[Path], bool]
    load: Callable[..., Any]
    describe: Callable[[Path], Any]
    description: str = ""
    options: tuple[str, ...] = ()
    #: higher is tried first when several formats recognise a folder
    priority: int = 0
