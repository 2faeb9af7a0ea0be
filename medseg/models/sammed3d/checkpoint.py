"""Safe loading of SAM-Med3D checkpoints (``.pth``).

The authors publish either a bare state dict or their training checkpoint, a dict with the
state dict under ``model_state_dict`` (beside ``epoch``, optimiser state, losses...). Both load
with ``torch.load(weights_only=True)`` and nothing else: a file that pickles anything but
tensors and plain containers (their training checkpoints may hold the run's
``argparse.Namespace``) is refused with one line naming what it holds, never unpickled.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from medseg.errors import InputError, first_line

#: where the authors' training checkpoints keep the weights
WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")
_UNSAFE = re.compile(r"GLOBAL (\S+) was not an allowed global")
_UNPICKLER = re.compile(r"WeightsUnpickler error: ([^\n]+)")


def _load_error(path: Path, exc: BaseException) -> InputError:
    text = str(exc)
    found = _UNSAFE.search(text)
    if found:
        return InputError(path, f"checkpoint refused: it pickles {found.group(1)}, which a "
                                "weights file must not hold; re-save its model_state_dict "
                                "alone (torch.save(ckpt['model_state_dict'], ...)) where you "
                                "trust the file")
    other = _UNPICKLER.search(text)
    if other:
        return InputError(path, f"checkpoint refused by the weights-only loader "
                                f"({other.group(1).strip()[:160]})")
    first = first_line(exc, 160) or type(exc).__name__
    return InputError(path, f"checkpoint is truncated or corrupt ({first})")


def _state_dict(path: Path, data: object) -> dict[str, torch.Tensor]:
    if isinstance(data, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not data:
        raise InputError(path, f"is not a SAM-Med3D checkpoint (holds {type(data).__name__}, "
                               "not a state dict)")
    state = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if len(state) != len(data):
        bad = next(k for k, v in data.items() if not isinstance(v, torch.Tensor))
        raise InputError(path, f"is not a SAM-Med3D state dict ({bad!r} is not a tensor)")
    # checkpoints saved from a DataParallel/DDP wrapper prefix every key with "module."
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The network's state dict; refused or broken files are a one-line InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True,
                          mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # torch raises many types for refused or corrupt files
        raise _load_error(path, exc) from None
    return _state_dict(path, data)
