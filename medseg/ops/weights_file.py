"""Read a checkpoint with ``torch.load(weights_only=True)`` and nothing else; a file that is
missing, truncated, or pickles anything beyond what is allowed is one :class:`InputError`
naming it (and, when refused, naming the global it pickles)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from medseg.errors import InputError, first_line

_UNSAFE = re.compile(r"GLOBAL (\S+) was not an allowed global")
_UNPICKLER = re.compile(r"WeightsUnpickler error: ([^\n]+)")


def load_weights_only(path: str | Path, *, allowed: Sequence[Any] = (),
                      refused_hint: str = "") -> Any:
    """The object in ``path`` (memory-mapped when it is a zip checkpoint), loaded with only
    tensors, plain containers and the ``allowed`` globals; ``refused_hint`` ends the error
    when the file pickles something else."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True,
                              mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # torch raises many types for refused or corrupt files
        raise load_error(path, exc, refused_hint) from None


def load_error(path: Path, exc: BaseException, refused_hint: str = "") -> InputError:
    text = str(exc)
    found = _UNSAFE.search(text)
    if found:
        return InputError(path, f"checkpoint refused: it pickles {found.group(1)}, which a "
                                f"weights file must not hold{refused_hint}")
    other = _UNPICKLER.search(text)
    if other:
        return InputError(path, f"checkpoint refused by the weights-only loader "
                                f"({other.group(1).strip()[:160]})")
    first = first_line(exc, 160) or type(exc).__name__
    return InputError(path, f"checkpoint is truncated or corrupt ({first})")
