"""The network an nnU-Net plans file describes, built from allow-lists only.

nnU-Net locates ``network_class_name`` and every ``_kw_requires_import`` entry with
``pydoc.locate``, i.e. it imports whatever dotted name the file holds. Here the class name must
be one of :data:`ARCHITECTURES` (the U-Nets of ``dynamic_network_architectures`` that nnU-Net's
planners, including the ResEnc presets, and TotalSegmentator's plans use), and each imported
keyword must name one of a few ``torch.nn`` layer classes (:data:`LAYERS`); anything else is a
one-line error naming the plans file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg.errors import InputError, exception_summary
from medseg.models.memory_budget import (
    FLOAT32,
    human_bytes,
    over_limit,
    unet_activations,
    unet_parameters,
)
from medseg.models.nnunet.plans import ArchitectureSpec

_DNA = "dynamic_network_architectures.architectures"
#: accepted spellings of a class name -> the class's name in dynamic_network_architectures
ARCHITECTURES: dict[str, str] = {
    "PlainConvUNet": "PlainConvUNet",
    f"{_DNA}.unet.PlainConvUNet": "PlainConvUNet",
    "ResidualEncoderUNet": "ResidualEncoderUNet",
    f"{_DNA}.unet.ResidualEncoderUNet": "ResidualEncoderUNet",
    # the path nnU-Net's old-plans conversion writes
    f"{_DNA}.residual_unet.ResidualEncoderUNet": "ResidualEncoderUNet",
}

#: which torch.nn classes each importable keyword may name
LAYERS: dict[str, tuple[type[nn.Module], ...]] = {
    "conv_op": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "norm_op": (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.BatchNorm1d,
                nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm),
    "dropout_op": (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d),
    "nonlin": (nn.LeakyReLU, nn.ReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh),
}


def _spellings(cls: type) -> tuple[str, str]:
    return f"torch.nn.{cls.__name__}", f"{cls.__module__}.{cls.__name__}"


def _layer(plans_path: Path, key: str, value: Any) -> Any:
    if value is None:
        return None
    if key not in LAYERS:
        raise InputError(plans_path, f"architecture keyword {key!r} asks for an import; only "
                                     f"{', '.join(LAYERS)} may name a class")
    for cls in LAYERS[key]:
        if value in _spellings(cls):
            return cls
    allowed = ", ".join(c.__name__ for c in LAYERS[key])
    raise InputError(plans_path, f"architecture {key} {value!r} is not allowed (torch.nn "
                                 f"{allowed})")


def architecture_class(spec: ArchitectureSpec, plans_path: Path) -> type[nn.Module]:
    name = ARCHITECTURES.get(spec.class_name)
    if name is None:
        known = sorted({v for v in ARCHITECTURES.values()})
        raise InputError(plans_path, f"architecture {spec.class_name!r} is not one medseg builds "
                                     f"(allowed: {', '.join(known)})")
    try:
        from dynamic_network_architectures.architectures import unet
    except ImportError:
        raise InputError(plans_path, "nnU-Net models need the dynamic-network-architectures "
                                     "package (pip install dynamic-network-architectures==0.3.1)"
                         ) from None
    return getattr(unet, name)


def planned_parameters(spec: ArchitectureSpec, plans_path: Path, in_channels: int,
                       n_classes: int, spatial_dims: int) -> int:
    """Elements of the weights the plans' network will hold, computed from the plans alone
    (nothing is built); a keyword that cannot be read is a one-line error."""
    name = ARCHITECTURES.get(spec.class_name, spec.class_name)
    try:
        return unet_parameters(name, spec.kwargs, in_channels, n_classes, spatial_dims)
    except ValueError as exc:
        raise InputError(plans_path, f"the {spec.short_name} described here cannot be sized "
                                     f"({exc})") from None


def planned_activations(spec: ArchitectureSpec, plans_path: Path, patch: tuple[int, ...],
                        in_channels: int, n_classes: int) -> int:
    """Float elements one sample's forward pass on ``patch`` holds at its peak (estimate)."""
    name = ARCHITECTURES.get(spec.class_name, spec.class_name)
    try:
        return unet_activations(name, spec.kwargs, patch, in_channels, n_classes)
    except ValueError as exc:
        raise InputError(plans_path, f"the {spec.short_name} described here cannot be sized "
                                     f"({exc})") from None


def check_network_memory(spec: ArchitectureSpec, plans_path: Path, elements: int,
                         limit: int) -> None:
    """Refuse, before it is built, a network whose float32 weights exceed ``limit``."""
    needed = FLOAT32 * elements
    if needed > limit:
        raise InputError(plans_path, f"the {spec.short_name} described here has {elements} "
                                     f"parameters, which need {over_limit(needed, limit)}")


def stored_elements(weights: Mapping[str, torch.Tensor]) -> int:
    """Elements a state dict really stores: tensors sharing a storage counted once (a U-Net's
    state dict names most weights two or four times)."""
    seen: dict[int, int] = {}
    for t in weights.values():
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes() // max(1, t.element_size())
    return sum(seen.values())


def check_fits_weights(spec: ArchitectureSpec, plans_path: Path, elements: int,
                       weights: Mapping[str, torch.Tensor], where: Path) -> None:
    """Refuse, before it is built, a network larger than the weights a checkpoint stores: it
    could never load them, and building it could take far more memory than the file."""
    stored = stored_elements(weights)
    if elements > stored:
        raise InputError(plans_path, f"the {spec.short_name} described here has {elements} "
                                     f"parameters ({human_bytes(FLOAT32 * elements)}), but "
                                     f"{where} stores {stored}: the weights cannot fit it, so "
                                     "it is not built")


def build_network(spec: ArchitectureSpec, plans_path: Path, in_channels: int,
                  n_classes: int) -> nn.Module:
    """The plans' network without deep supervision (weights still to be loaded)."""
    cls = architecture_class(spec, plans_path)
    kwargs: dict[str, Any] = dict(spec.kwargs)
    for key in spec.requires_import:
        if key not in kwargs:
            raise InputError(plans_path, f"architecture keyword {key!r} is listed for import but "
                                         "not given")
        kwargs[key] = _layer(plans_path, key, kwargs[key])
    kwargs["deep_supervision"] = False
    kwargs.pop("input_channels", None)
    kwargs.pop("num_classes", None)
    try:
        net = cls(input_channels=in_channels, num_classes=n_classes, **kwargs)
    except Exception as exc:
        raise InputError(plans_path, f"the {spec.short_name} described here cannot be built "
                                     f"({exception_summary(exc, 160)})") from None
    return net


def load_weights(net: nn.Module, weights: Mapping[str, torch.Tensor], where: Path) -> None:
    """Strict ``load_state_dict``; a mismatch is one line naming what does not fit."""
    own = net.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [k for k in own if k in weights and tuple(own[k].shape) != tuple(weights[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of another shape (e.g. {k}: "
                         f"{tuple(weights[k].shape)} vs {tuple(own[k].shape)})")
        raise InputError(where, "weights do not fit the network plans.json describes: "
                                + "; ".join(parts))
    net.load_state_dict(weights, strict=True)
