"""Safe loading of nnU-Net checkpoints (``fold_N/checkpoint_final.pth``).

A checkpoint is a pickled dict: ``network_weights`` (the state dict), ``optimizer_state``,
``init_args`` (plans and dataset dicts, configuration, fold), ``trainer_name``,
``inference_allowed_mirroring_axes``, ``logging`` and ``_best_ema``. The last two hold numpy
scalars, which ``torch.load(weights_only=True)`` refuses by default, which is why nnU-Net itself
loads with ``weights_only=False`` and would run whatever the file's pickle asks for.

Here the file is read with ``weights_only=True`` only, allowing exactly the numpy pieces a numpy
scalar is pickled with: the ``scalar`` reconstructor (under numpy 1's ``numpy.core`` and numpy
2's ``numpy._core`` names) and ``numpy.dtype`` with its per-type dtype classes. Any other
global (a function, a class, an array) is refused with a one-line error naming it; it never
runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import InputError
from medseg.ops.weights_file import load_weights_only

_DTYPE_CLASSES = ("BoolDType", "Int8DType", "UInt8DType", "Int16DType", "UInt16DType",
                  "Int32DType", "UInt32DType", "Int64DType", "UInt64DType", "Float16DType",
                  "Float32DType", "Float64DType", "LongDType", "ULongDType", "LongLongDType",
                  "ULongLongDType")


def allowed_globals() -> list[Any]:
    """The numpy scalar and dtype classes nnU-Net checkpoints pickle, and nothing else."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    allowed: list[Any] = [(scalar, "numpy.core.multiarray.scalar"),
                          (scalar, "numpy._core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)
    for name in _DTYPE_CLASSES:
        cls = getattr(dtypes, name, None)
        if cls is not None:
            allowed.append((cls, f"numpy.dtypes.{name}"))
    return allowed


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    weights: dict[str, torch.Tensor]
    trainer_name: str
    #: the configuration the network was trained in (``init_args``), if recorded
    configuration: str | None
    #: spatial axes (nnU-Net's order) test-time mirroring may flip; None: no mirroring
    mirroring_axes: tuple[int, ...] | None


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load with ``weights_only=True``; refused or broken files are a one-line InputError."""
    path = Path(path)
    data = load_weights_only(path, allowed=allowed_globals(),
                             refused_hint=" (only tensors, numbers and numpy scalars are loaded)")
    return _validate(path, data)


def _validate(path: Path, data: Any) -> Checkpoint:
    if not isinstance(data, dict):
        raise InputError(path, f"is not an nnU-Net checkpoint (holds {type(data).__name__}, "
                               "not a dict)")
    weights = data.get("network_weights")
    if not isinstance(weights, dict) or not weights or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise InputError(path, "is not an nnU-Net checkpoint (no 'network_weights' state dict)")
    init_args = data.get("init_args")
    configuration = init_args.get("configuration") if isinstance(init_args, dict) else None
    axes = data.get("inference_allowed_mirroring_axes")
    mirroring: tuple[int, ...] | None = None
    if axes is not None:
        if not isinstance(axes, (list, tuple)) or not all(
                isinstance(a, (int, np.integer)) and 0 <= int(a) < 3 for a in axes):
            raise InputError(path, f"inference_allowed_mirroring_axes {axes!r} are not axes")
        mirroring = tuple(int(a) for a in axes)
    return Checkpoint(path=path, weights=weights, trainer_name=str(data.get("trainer_name", "")),
                      configuration=str(configuration) if isinstance(configuration, str)
                      else None, mirroring_axes=mirroring)
