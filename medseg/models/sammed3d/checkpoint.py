"""Safe loading of SAM-Med3D checkpoints (``.pth``).

The authors publish either a bare state dict or their training checkpoint, a dict with the
state dict under ``model_state_dict`` (beside ``epoch``, optimiser state, losses...). Both load
with ``torch.load(weights_only=True)`` and nothing else: a file that pickles anything but
tensors and plain containers (their training checkpoints may hold the run's
``argparse.Namespace``) is refused with one line naming what it holds, never unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from medseg.errors import InputError
from medseg.ops.weights_file import load_weights_only

#: where the authors' training checkpoints keep the weights
WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")
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
    data = load_weights_only(path, refused_hint="; re-save its model_state_dict alone "
                             "(torch.save(ckpt['model_state_dict'], ...)) where you trust the file")
    return _state_dict(path, data)
