"""When medseg lets a MONAI bundle's configs run.

A bundle config is a program: ``$`` values are passed to Python's ``eval`` (``$import os``
imports a module as soon as anything is parsed), ``_target_`` names any importable callable,
``_mode_`` can call a function or start the debugger, ``%path#id`` pulls content from another
file, and some MONAI components resolve a dotted name given as a plain string (a
``LoadImaged`` ``reader``, a ``SaveImaged`` ``writer``). So a bundle runs only when it is
**trusted**: ``trust=True`` (``--trust-bundle``), or its resolved folder is (or lies under) a
folder listed in ``MEDSEG_TRUSTED_BUNDLES`` (``os.pathsep``-separated).

An untrusted bundle may still run when its configs hold no code at all by these rules
(:func:`first_code` finds none): no ``$`` expression, no ``%`` macro reading another file, no
``_mode_`` other than ``default``, every ``_target_`` a component of :data:`SAFE_NAMESPACES`,
no string naming a Python object outside them, and no ``pretrained`` network (MONAI downloads
those weights when the network is built). The check reads the files as data and runs
before anything is parsed by MONAI.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.models.monai_bundle.walk import walk

TRUST_ENV = "MEDSEG_TRUSTED_BUNDLES"
#: where an untrusted bundle's ``_target_`` components may come from: networks, transforms,
#: inferers and torch layers; not monai.bundle/apps/utils/data/handlers/engines, which load,
#: download, write or run commands
SAFE_NAMESPACES = ("monai.networks.", "monai.transforms.", "monai.inferers.", "torch.nn.")
#: builtins that MONAI's name lookup (pydoc.locate) would hand back as a callable
_RISKY_BUILTINS = {"open", "eval", "exec", "compile", "__import__", "breakpoint", "input",
                   "exit", "quit", "help", "getattr", "setattr", "delattr", "globals",
                   "locals", "vars", "memoryview"}
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


@dataclass(frozen=True)
class Code:
    """The first place in a config that would run code: its id and text."""

    where: str
    text: str

    def quoted(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f'"{text}"'


def is_trusted(root: Path, trust: bool = False) -> bool:
    """``trust`` or the bundle folder listed (itself or a parent) in ``MEDSEG_TRUSTED_BUNDLES``."""
    if trust:
        return True
    here = Path(root).resolve()
    for entry in os.environ.get(TRUST_ENV, "").split(os.pathsep):
        if not entry.strip():
            continue
        listed = Path(entry).expanduser().resolve()
        if here == listed or listed in here.parents:
            return True
    return False


def _safe_module(module: str) -> bool:
    return any((module + ".").startswith(ns) for ns in SAFE_NAMESPACES)


@functools.lru_cache(maxsize=1)
def _locator() -> Any:
    """MONAI's own name lookup for bare ``_target_`` names (it scans the monai modules once)."""
    from monai.bundle import ComponentLocator

    return ComponentLocator()


def _safe_target(target: Any) -> bool:
    if not isinstance(target, str) or not target:
        return False
    if "." in target:
        return _safe_module(target.rsplit(".", 1)[0])
    module = _locator().get_component_module_name(target)
    modules = module if isinstance(module, list) else [module] if module else []
    # MONAI takes the first module when a name is found in several: all must be safe
    return bool(modules) and all(_safe_module(m) for m in modules)


def _names_python_object(text: str) -> bool:
    """A plain string that MONAI could turn into a callable by name."""
    if text in _RISKY_BUILTINS:
        return True
    if not _DOTTED.match(text):
        return False
    if _safe_module(text.rsplit(".", 1)[0]) or _is_dtype_name(text):
        return False
    try:  # find_spec on a top-level name looks for the module without importing it
        return importlib.util.find_spec(text.split(".", 1)[0]) is not None
    except (ImportError, ValueError):
        return False


def _is_dtype_name(text: str) -> bool:
    """``torch.float32``, ``numpy.uint8``: a data type, not a callable to run."""
    import numpy as np
    import torch

    module, _, name = text.partition(".")
    if module == "torch":
        return isinstance(getattr(torch, name, None), torch.dtype)
    if module in ("numpy", "np"):
        obj = getattr(np, name, None)
        return isinstance(obj, type) and issubclass(obj, np.generic)
    return False


def first_code(config: dict[str, Any]) -> Code | None:
    """The first item of ``config`` that would run code (see the module docstring)."""
    for where, value in walk(config):
        key = where.rsplit("#", 1)[-1]
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("$"):
                return Code(where, text)
            if text.startswith("%") and not text.startswith("%#"):
                path = text[1:].split("#", 1)[0].split("::", 1)[0]
                if path:
                    return Code(where, text)
            if key == "_target_":
                if not _safe_target(text):
                    return Code(where, f"_target_: {text}")
            elif key == "_mode_":
                if text != "default":
                    return Code(where, f"_mode_: {text}")
            elif _names_python_object(text):
                return Code(where, text)
        elif key == "_target_":
            return Code(where, f"_target_: {value!r}")
        if key == "pretrained" and value not in (None, False, "false", "False"):
            return Code(where, f"pretrained: {value!r} (downloads weights)")
    return None


def check_trust(root: Path, files: list[tuple[Path, dict[str, Any]]],
                trust: bool = False) -> Code | None:
    """Raise a one-line :class:`InputError` naming the file and its first code item unless
    the bundle is trusted or holds no code; returns that first item (None when there is none)."""
    for path, config in files:
        code = first_code(config)
        if code is None:
            continue
        if is_trusted(root, trust):
            return code
        raise InputError(path, f"untrusted bundle runs Python ({code.quoted()} at {code.where}); "
                         f"pass --trust-bundle or list it in {TRUST_ENV}")
    return None
