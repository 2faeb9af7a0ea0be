"""How quantities are written for people (command line and web app alike)."""

from __future__ import annotations


def ml_text(ml: float) -> str:
    """A volume in mL: one decimal, but a speck below 1 mL keeps two significant digits (a
    1-voxel "lesion" of 0.064 mL is not written as 0.1 mL)."""
    return f"{ml:.2g}" if 0 < ml < 1 else f"{ml:.1f}"


def count_text(n: int, one: str, many: str) -> str:
    """``n`` and the noun for it: ``1 class``, ``3 classes``."""
    return f"{n} {one if n == 1 else many}"
