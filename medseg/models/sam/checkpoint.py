"""A SAM/MedSAM checkpoint file: a plain state dict (``medsam_vit_b.pth``, ``sam_vit_b_*.pth``)
or a training checkpoint holding one under ``model`` (MedSAM's ``train_one_gpu.py``), loaded
with ``torch.load(weights_only=True)`` only."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from medseg.errors import InputError
from medseg.io.guards import reason


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` by name; anything else (a missing, truncated or foreign file,
    a pickle that needs code) is an :class:`InputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            zipfile.BadZipFile, AttributeError, TypeError) as exc:
        raise InputError(path, f"is not a readable PyTorch checkpoint ({reason(exc)})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(path, "does not hold a state dict (a mapping of tensor names to "
                               "tensors)")
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(path, f"entry {key!r} is a {type(value).__name__}, not a tensor")
        state[str(key)] = value.float() if value.is_floating_point() else value
    return state
