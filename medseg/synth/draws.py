"""The one scalar draw the generator modules share: a uniform number from a torch stream."""

from __future__ import annotations

import torch


def uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    """A number drawn uniformly from ``[lo, hi)`` with one draw of ``gen``."""
    return lo + (hi - lo) * float(torch.rand((), generator=gen))
