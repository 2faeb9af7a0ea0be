"""Device selection: CUDA automatically when present (with AMP), else CPU."""

from __future__ import annotations

import contextlib

import torch

from medseg.errors import MedsegError


def resolve_device(device: str | None = None) -> torch.device:
    """``None`` or ``"auto"`` picks CUDA when available; else the device as named."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MedsegError(f"device {device!r} requested but CUDA is not available")
    return dev


def autocast(device: torch.device):
    """float16 autocast on CUDA; nothing on CPU (bf16 autocast is far slower there)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
