"""Walking a MONAI bundle config (nested dicts and lists) as data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def walk(config: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``(id, value)`` in a nested config, ids joined with ``#`` as MONAI writes them."""
    if isinstance(config, dict):
        for key, value in config.items():
            sub = f"{where}#{key}" if where else str(key)
            yield sub, value
            yield from walk(value, sub)
    elif isinstance(config, list):
        for i, value in enumerate(config):
            sub = f"{where}#{i}" if where else str(i)
            yield sub, value
            yield from walk(value, sub)
