"""When medseg lets a MONAI bundle's configs run.

A bundle config is a program: ``$`` values are passed to Python's ``eval`` (``$import os``
imports a module as soon as anything is parsed), ``_target_`` names any importable callable,
``_mode_`` can call a function and ``_debug_`` start the debugger, ``%path#id`` pulls content
from another file, and some MONAI components resolve a dotted name given as a plain string (a
``LoadImaged`` ``reader``, a ``SaveImaged`` ``writer``, a ``merger_cls``). So a bundle runs
only when it is **trusted**: ``trust=True`` (``--trust-bundle``), or its resolved folder is
(or lies under) a folder listed in ``MEDSEG_TRUSTED_BUNDLES`` (``os.pathsep``-separated).

An untrusted bundle may still run when :func:`code_items` finds nothing in its configs: no
``$`` expression, no ``%`` macro reading another file, no ``_mode_`` other than ``default``, no
``_debug_``, every ``_target_``, ``reader`` and ``writer`` resolving to an object on the
allow-list of :mod:`.allowlist` (by identity, without importing anything), no other string
naming a Python object, no file path (an absolute path, ``~`` or a path separator) and no
``pretrained`` network (MONAI downloads those weights when the network is built).
``SaveImage*`` transforms in a transform list are dropped before the check (medseg writes its
own outputs), so they are neither code nor run. The check reads the files as data; the config
that MONAI then parses is the checked data itself, with every name replaced by the object it
resolved to (:mod:`.sanitize`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.models.monai_bundle.allowlist import is_writer, resolve
from medseg.models.monai_bundle.layout import BundleLayout

TRUST_ENV = "MEDSEG_TRUSTED_BUNDLES"
#: builtins that MONAI's name lookup (pydoc.locate) would hand back as a callable
_RISKY_BUILTINS = {"open", "eval", "exec", "compile", "__import__", "breakpoint", "input",
                   "exit", "quit", "help", "getattr", "setattr", "delattr", "globals",
                   "locals", "vars", "memoryview"}
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


@dataclass(frozen=True)
class Code:
    """One place in a config that would run code (or reach a file): its id and text."""

    where: str
    text: str

    def shown(self) -> str:
        """``"text" at where``, whole, with control characters escaped (one line, no terminal
        escapes)."""
        return f'"{printable(self.text)}" at {printable(self.where)}'

    def quoted(self) -> str:
        return f'"{printable(self.text)}"'


def printable(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


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


#: component keys whose string value MONAI resolves to a class by name, and the allow-list
#: kind each must resolve to (``merger_cls`` has none: it needs trust)
NAME_KEYS = {"reader": "reader", "writer": "writer", "merger_cls": None}
#: top-level keys medseg sets itself (as ``monai.bundle run --bundle_root ...`` would)
OVERRIDDEN = ("bundle_root", "output_dir", "dataset_dir")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def _names_python_object(text: str, root: Path | None = None,
                         found: dict[str, bool] | None = None) -> bool:
    """A plain string that names a Python object off the allow-list: a risky builtin, or a
    dotted name whose top-level module is loaded or importable (or would be, from the bundle
    folder). Nothing is imported to decide; ``found`` caches the answer per top-level name."""
    if text in _RISKY_BUILTINS:
        return True
    if not _DOTTED.match(text):
        return False
    if resolve(text, "value") is not None or resolve(text, "component") is not None:
        return False
    top = text.split(".", 1)[0]
    found = {} if found is None else found
    if top not in found:
        found[top] = _module_exists(top, root)
    return found[top]


def _module_exists(top: str, root: Path | None) -> bool:
    if top in sys.modules:
        return True
    if root is not None and ((root / top).is_dir() or (root / f"{top}.py").is_file()):
        return True
    try:  # find_spec on a top-level name looks for the module without importing it
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _is_path(text: str) -> bool:
    """A string that names a file or folder (or a URL): absolute, ``~``, or a separator."""
    return (text.startswith(("/", "~", "\\")) or "/" in text or "\\" in text
            or bool(_WINDOWS_DRIVE.match(text)))


def _string_item(where: str, key: str, text: str, root: Path | None, paths: bool,
                 found: dict[str, bool]) -> Code | None:
    stripped = text.strip()
    if stripped.startswith("$"):
        return Code(where, stripped)
    if (stripped.startswith("%") and not stripped.startswith("%#")
            and stripped[1:].split("#", 1)[0].split("::", 1)[0]):
        return Code(where, stripped)  # a macro that reads another file
    if key == "_target_":
        return None if resolve(text) is not None else Code(where, f"_target_: {text}")
    if key == "_mode_":
        return None if text == "default" else Code(where, f"_mode_: {text}")
    if key in NAME_KEYS:
        kind = NAME_KEYS[key]
        return None if kind and resolve(text, kind) is not None else Code(where, text)
    if key == "_desc_":
        return None
    if _names_python_object(stripped, root, found):
        return Code(where, stripped)
    if paths and _is_path(stripped):
        return Code(where, f"file path: {stripped}")
    return None


def code_items(config: Any, root: Path | None = None, *, prefix: str = "",
               paths: bool = True) -> list[Code]:
    """Every item of ``config`` that needs trust (see the module docstring), in file order.
    ``root`` is the bundle folder (a dotted name of a module there counts as code); ``prefix``
    starts every id (``_meta_`` for the metadata, as MONAI addresses it); ``paths=False``
    lets file paths pass (free text such as the metadata's)."""
    items: list[Code] = []
    found: dict[str, bool] = {}  # top-level name -> a module of that name exists
    # (id, key of the value, value, the name-key whose list this string is in)
    stack: list[tuple[str, str, Any, str]] = [(prefix, "", config, "")]
    while stack:
        where, key, value, list_of = stack.pop()
        if isinstance(value, str):
            top_level_override = where in OVERRIDDEN
            if not (top_level_override and not value.strip().startswith("$")):
                code = _string_item(where, list_of or key, value, root, paths, found)
                if code is not None:
                    items.append(code)
            continue
        if key == "_target_" and where != prefix:
            items.append(Code(where, f"_target_: {value!r}"))
        if key == "_debug_":
            items.append(Code(where, f"_debug_: {value!r} (starts the debugger)"))
        elif key == "pretrained" and value not in (None, False, "false", "False"):
            items.append(Code(where, f"pretrained: {value!r} (downloads weights)"))
        children: list[tuple[str, str, Any, str]] = []
        if isinstance(value, dict):
            for k, v in value.items():
                children.append((f"{where}#{k}" if where else str(k), str(k), v, ""))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, dict) and is_writer(v.get("_target_")):
                    continue  # SaveImage* in a transform list: dropped, never built
                names = key if key in NAME_KEYS and isinstance(v, str) else ""
                children.append((f"{where}#{i}" if where else str(i), str(i), v, names))
        stack.extend(reversed(children))
    return items


def first_code(config: dict[str, Any]) -> Code | None:
    """The first item of ``config`` that would run code (see :func:`code_items`)."""
    items = code_items(config)
    return items[0] if items else None


def bundle_code(layout: BundleLayout, config: dict[str, Any],
                meta: dict[str, Any]) -> list[Code]:
    """Every item of a bundle that needs trust: its inference config's, its metadata's (ids
    starting with ``_meta_#``, as MONAI refers to them) and a TorchScript model."""
    items = (code_items(config, layout.root)
             + code_items(meta, layout.root, prefix="_meta_", paths=False))
    if layout.torchscript:
        items.append(Code(str(layout.weights.relative_to(layout.root)),
                          "TorchScript program (torch.jit.load)"))
    return items


def describe_items(items: list[Code]) -> str:
    """``N items: "text" at id; ...``: every item, whole, on one line."""
    return (f"{len(items)} item{'s' if len(items) != 1 else ''}: "
            + "; ".join(code.shown() for code in items))


def check_trust(root: Path, config_path: Path, items: list[Code],
                trust: bool = False) -> list[Code]:
    """Raise a one-line :class:`InputError` naming ``config_path`` and every item unless the
    bundle is trusted or ``items`` is empty; returns ``items``."""
    if not items or is_trusted(root, trust):
        return items
    files = any(code.text.startswith("file path: ") for code in items)
    raise InputError(config_path, f"untrusted bundle runs Python"
                                  f"{' or reaches files' if files else ''} "
                                  f"({describe_items(items)}); pass --trust-bundle or list "
                                  f"it in {TRUST_ENV}")
