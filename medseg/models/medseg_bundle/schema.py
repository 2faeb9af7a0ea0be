"""The schema a bundle's ``config.json`` must meet before anything is built from it.

Checked with jsonschema (Draft 2020-12) plus what JSON Schema cannot say: every number finite,
``patch_size`` and ``target_spacing`` as long as ``spatial_dims``, label values distinct, and
the network's channel counts within a memory estimate. Every violation is one line naming the
key, e.g. ``config.json: patch_size[0]: -64 is less than the minimum of 8``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medseg.errors import InputError

#: largest network weights a bundle may ask for before anything is allocated
MAX_NETWORK_BYTES = 2 * 1024**3
#: architecture parameters that hold channel counts (MONAI UNet and friends)
CHANNEL_KEYS = ("channels", "filters", "features", "init_filters", "feature_size")

_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_INT_LIST = {"type": "array", "items": {"type": "integer"}}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["architecture", "labels", "spatial_dims", "in_channels", "patch_size",
                 "preprocessing", "weights"],
    "additionalProperties": False,
    "properties": {
        "format_version": {"type": "integer", "minimum": 1, "maximum": 1},
        "name": {"type": "string", "maxLength": 200},
        "description": {"type": "string", "maxLength": 20000},
        "modality": {"type": ["string", "null"], "maxLength": 32},
        "architecture": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100},
                           "params": {"type": "object"}},
        },
        "spatial_dims": {"enum": [2, 3]},
        "in_channels": {"type": "integer", "minimum": 1, "maximum": 64},
        "channel_names": {"type": ["array", "object"], "maxItems": 64, "maxProperties": 64},
        "labels": {
            "type": "object", "minProperties": 2, "maxProperties": 1024,
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 65535},
        },
        "patch_size": {"type": "array", "minItems": 2, "maxItems": 3,
                       "items": {"type": "integer", "minimum": 8, "maximum": 1024}},
        "preprocessing": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "target_spacing": {"oneOf": [
                    {"type": "null"},
                    {"type": "array", "minItems": 2, "maxItems": 3,
                     "items": {**_POSITIVE, "maximum": 100}}]},
                "intensity": {"type": "object", "required": ["scheme"],
                              "properties": {"scheme": {"type": "string"}}},
                "orientation": {"enum": ["RAS"]},
            },
        },
        "inference": {
            "type": "object",
            "properties": {"overlap": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                           "postprocessors": {"type": "array"}},
        },
        "weights": {
            "type": "object", "required": ["sha256"],
            "properties": {"file": {"type": "string", "pattern": r"^[^/\\]+$"},
                           "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        },
        "training": {"type": "object"},
        "training_record": {"type": "object"},
        "synthesis": {"type": "object"},
        "segment_codes": {"type": "object"},
    },
}


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _numbers(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, float]]:
    if isinstance(value, bool):
        return
    if isinstance(value, float):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, (*path, i))


def network_bytes_estimate(params: dict[str, Any], in_channels: int, out_channels: int,
                           spatial_dims: int) -> int:
    """Rough float32 weight bytes of a conv net from its channel counts (two k^d convs per
    level, encoder and decoder): enough to refuse absurd configs before building them."""
    widths: list[int] = []
    for key in CHANNEL_KEYS:
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            widths += [value * 2**i for i in range(5)]  # a base width doubles per level
        elif isinstance(value, list):
            widths += [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    if not widths:
        return 0
    kernel = 3**spatial_dims
    chain = [in_channels, *widths]
    weights = sum(a * b for a, b in itertools.pairwise(chain)) + sum(w * w for w in widths)
    return 4 * kernel * 2 * (weights + widths[0] * out_channels)


def validate_config(config: Any, path: Path) -> None:
    """Raise a one-line :class:`InputError` naming ``path`` and the key at fault."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    err = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if err is not None:
        while err.context:  # "not valid under any of the given schemas": say why
            err = jsonschema.exceptions.best_match(err.context)
        message = " ".join(err.message.split())
        if len(message) > 160:
            message = message[:157] + "..."
        raise InputError(path, f"{_where(err.absolute_path)}: {message}")
    for where, value in _numbers(config):
        if not math.isfinite(value):
            raise InputError(path, f"{_where(where)}: {value} is not a finite number")
    dims = config["spatial_dims"]
    if len(config["patch_size"]) != dims:
        raise InputError(path, f"patch_size: {len(config['patch_size'])} values for "
                               f"spatial_dims {dims}")
    spacing = config["preprocessing"].get("target_spacing")
    if spacing is not None and len(spacing) != dims:
        raise InputError(path, f"preprocessing.target_spacing: {len(spacing)} values for "
                               f"spatial_dims {dims}")
    values = list(config["labels"].values())
    if len(set(values)) != len(values):
        raise InputError(path, "labels: two classes share a value")
    params = config["architecture"].get("params") or {}
    estimate = network_bytes_estimate(params, config["in_channels"], len(values), dims)
    if estimate > MAX_NETWORK_BYTES:
        raise InputError(path, f"architecture.params: channel counts ask for about "
                               f"{estimate / 1024**3:.1f} GiB of weights, more than the limit "
                               f"{MAX_NETWORK_BYTES / 1024**3:.0f} GiB")
