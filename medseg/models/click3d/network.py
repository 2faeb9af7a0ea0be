"""The click3d network: a small MONAI 3-D U-Net, built from ``click3d.json``'s architecture
entry, and its weights read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from monai.networks.nets import UNet

from medseg.errors import InputError, exception_summary

#: the architecture click3d.json may name, and the parameters it takes
ARCHITECTURES = ("monai_unet",)
PARAMS = ("channels", "strides", "num_res_units")


def build_network(architecture: str, params: dict[str, Any], in_channels: int) -> torch.nn.Module:
    """The U-Net (one output: the object's logit)."""
    if architecture != "monai_unet":
        raise ValueError(f"unknown architecture {architecture!r}; known: {ARCHITECTURES}")
    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=1,
                channels=tuple(int(c) for c in params["channels"]),
                strides=tuple(int(s) for s in params["strides"]),
                num_res_units=int(params.get("num_res_units", 1)))


def widen_inputs(state: dict[str, torch.Tensor], net: torch.nn.Module
                 ) -> dict[str, torch.Tensor]:
    """``state`` fitted to ``net`` where ``net`` takes more input channels: the weights of the
    new channels are zeros, so the widened network computes what the old one did until it is
    trained (a new guidance channel added to a trained model)."""
    target = net.state_dict()
    out = {}
    for key, value in state.items():
        want = target.get(key)
        if (want is not None and value.dim() == want.dim() >= 2
                and value.shape[0] == want.shape[0] and value.shape[2:] == want.shape[2:]
                and value.shape[1] < want.shape[1]):
            pad = torch.zeros((value.shape[0], want.shape[1] - value.shape[1],
                               *value.shape[2:]), dtype=value.dtype)
            value = torch.cat([value, pad], dim=1)
        out[key] = value
    return out


def load_weights(net: torch.nn.Module, path: Path) -> torch.nn.Module:
    """``net`` with the state dict at ``path`` (float16 or float32 tensors, stored as float32);
    a missing, unreadable or mismatched file is one :class:`InputError` naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "the weights file is missing") from None
    except Exception as exc:
        raise InputError(path, f"cannot read the weights: {exception_summary(exc)}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise InputError(path, "is not a state dict of tensors")
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        raise InputError(path, f"does not fit the architecture in click3d.json: "
                               f"{exception_summary(exc)}") from None
    return net.eval()
