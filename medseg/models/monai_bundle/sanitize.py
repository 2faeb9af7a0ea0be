"""The config MONAI's ``ConfigParser`` is given: the checked data, never the file again.

* :func:`drop_writers` (every bundle): ``SaveImage*`` transforms are removed from transform
  lists before anything is built; medseg writes its own outputs, and a bundle's saver would
  write the patient's image wherever its config says.
* :func:`with_objects` (untrusted bundles, which :func:`.trust.code_items` found code-free):
  every ``_target_``, ``reader``, ``writer`` name is replaced by the allow-listed object it
  resolved to (:mod:`.allowlist`), so MONAI looks nothing up by name: neither its
  ``ComponentLocator`` nor ``pydoc.locate`` runs, and what is built is exactly what was checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.models.monai_bundle.allowlist import is_writer, resolve
from medseg.models.monai_bundle.trust import NAME_KEYS


def drop_writers(config: Any) -> Any:
    """A copy of ``config`` without the ``SaveImage*`` entries of its lists."""
    if isinstance(config, dict):
        return {key: drop_writers(value) for key, value in config.items()}
    if isinstance(config, list):
        return [drop_writers(value) for value in config
                if not (isinstance(value, dict) and is_writer(value.get("_target_")))]
    return config


def _resolved(name: Any, kind: str, where: str, path: Path) -> Any:
    obj = resolve(name, kind)
    if obj is None:  # code_items() let it pass: a bug, refused rather than looked up by MONAI
        raise InputError(path, f"{where}: {name!r} is not on medseg's allow-list")
    return obj


def with_objects(config: Any, path: Path, where: str = "") -> Any:
    """A copy of ``config`` with every name resolved to its allow-listed object (``path`` is
    the config file, named if a name does not resolve)."""
    if isinstance(config, list):
        return [with_objects(value, path, f"{where}#{i}") for i, value in enumerate(config)]
    if not isinstance(config, dict):
        return config
    out: dict[Any, Any] = {}
    for key, value in config.items():
        sub = f"{where}#{key}" if where else str(key)
        if key == "_target_" and isinstance(value, str):
            out[key] = _resolved(value, "component", sub, path)
        elif key in NAME_KEYS and isinstance(value, (str, list)):
            kind = NAME_KEYS[key] or "none"
            names = value if isinstance(value, list) else [value]
            objs = [_resolved(v, kind, sub, path) if isinstance(v, str)
                    else with_objects(v, path, sub) for v in names]
            out[key] = objs if isinstance(value, list) else objs[0]
        else:
            out[key] = with_objects(value, path, sub)
    return out
