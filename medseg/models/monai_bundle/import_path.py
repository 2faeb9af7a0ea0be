"""Whether a bundle's folder is importable while MONAI builds and runs its components.

A trusted bundle's folder goes on ``sys.path`` (for its ``scripts`` package), as
``monai.bundle run`` puts it there. An untrusted bundle's folder never is: any entry that is
the folder or lies inside it (``""`` when the working directory does) is taken off
``sys.path`` while MONAI works, so a module placed there (``itk.py``, ``nrrd.py``) is not
picked up when MONAI probes its optional imports.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def on_sys_path(root: Path) -> Iterator[None]:
    """The bundle folder importable (its ``scripts`` package), as ``monai.bundle run`` does."""
    entry = str(root)
    sys.path.insert(1, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _inside(entry: str, root: Path) -> bool:
    try:
        where = Path(entry or os.getcwd()).resolve()
    except (OSError, RuntimeError):
        return False
    return where == root or root in where.parents


@contextlib.contextmanager
def off_sys_path(root: Path) -> Iterator[None]:
    """No ``sys.path`` entry inside the bundle folder while the block runs."""
    here = Path(root).resolve()
    removed = [(i, entry) for i, entry in enumerate(sys.path) if _inside(entry, here)]
    for _, entry in reversed(removed):
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)
    try:
        yield
    finally:
        for i, entry in removed:
            sys.path.insert(i, entry)


def bundle_import_path(root: Path, trusted: bool) -> contextlib.AbstractContextManager[None]:
    """:func:`on_sys_path` for a trusted bundle, :func:`off_sys_path` for any other."""
    return on_sys_path(root) if trusted else off_sys_path(root)


def importable_modules(root: Path, limit: int = 100) -> list[str]:
    """What a trusted bundle's folder makes importable (and so able to shadow an installed
    module of the same name, ``itk.py``): its top-level modules and packages, sorted, at
    most ``limit`` of them."""
    suffixes = tuple(importlib.machinery.all_suffixes())
    found: list[str] = []
    try:
        entries = sorted(Path(root).iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.split(".", 1)[0].isidentifier():
            continue  # not a name ``import`` can reach
        if entry.is_file() and entry.name.endswith(suffixes):
            found.append(entry.name)
        elif entry.is_dir() and any((entry / f"__init__{s}").is_file() for s in suffixes):
            found.append(entry.name + "/")
        if len(found) >= limit:
            break
    return found
