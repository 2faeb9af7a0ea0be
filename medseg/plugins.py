"""Plugin manager factory: entry points (built-ins included), a plugins folder, strict mode.

There is no module-level manager: call :func:`get_plugin_manager` (each test gets a fresh one).
Built-in plugins in ``plugins/`` are installed as the package ``medseg_plugins`` and declared in
the ``medseg`` entry-point group of medseg's own ``pyproject.toml``, so they load through the
very same path as third-party distributions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pluggy

from medseg import hookspecs
from medseg.errors import PluginError, exception_summary

ENTRY_POINT_GROUP = "medseg"
PLUGINS_DIR_ENV = "MEDSEG_PLUGINS_DIR"
STRICT_ENV = "MEDSEG_STRICT_PLUGINS"


class PluginWarning(UserWarning):
    """A plugin could not be loaded or failed; it is skipped and the rest keep working."""


def strict_mode(strict: bool | None = None) -> bool:
    if strict is not None:
        return strict
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def report_plugin_failure(plugin: str, problem: str, strict: bool) -> None:
    """Warn (or raise in strict mode) about a broken plugin, naming it."""
    message = f"plugin {plugin!r} {problem}"
    if strict:
        raise PluginError(message)
    warnings.warn(message, PluginWarning, stacklevel=3)



def _register(pm: pluggy.PluginManager, plugin: object, name: str, strict: bool) -> None:
    if pm.get_plugin(name) is not None or pm.is_registered(plugin):
        return
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        report_plugin_failure(name, f"could not be registered ({exception_summary(exc)})", strict)


def load_entry_points(pm: pluggy.PluginManager, strict: bool) -> None:
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                     key=lambda e: (e.dist.name if e.dist else "", e.name)):
        dist = ep.dist.name if ep.dist else "unknown"
        name = f"{dist}:{ep.name}"
        try:
            plugin = ep.load()
        except Exception as exc:
            report_plugin_failure(name, f"failed to import ({exception_summary(exc)})", strict)
            continue
        _register(pm, plugin, name, strict)


def plugin_dirs(plugins_dir: str | Path | Iterable[str | Path] | None) -> list[Path]:
    dirs: list[Path] = []
    if isinstance(plugins_dir, (str, Path)):
        dirs.append(Path(plugins_dir))
    elif plugins_dir is not None:
        dirs.extend(Path(p) for p in plugins_dir)
    env = os.environ.get(PLUGINS_DIR_ENV, "")
    dirs.extend(Path(p) for p in env.split(os.pathsep) if p.strip())
    return dirs


def load_plugins_dir(pm: pluggy.PluginManager, folder: Path, strict: bool) -> None:
    """Import every ``*.py`` file of ``folder`` as a single-file plugin named ``file:<stem>``."""
    if not folder.is_dir():
        report_plugin_failure(str(folder), "plugins folder does not exist", strict)
        return
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        name = f"file:{path.stem}"
        if pm.get_plugin(name) is not None:
            continue
        module = _import_file(path, name, strict)
        if module is not None:
            _register(pm, module, name, strict)


def _import_file(path: Path, name: str, strict: bool) -> ModuleType | None:
    mod_name = f"medseg_local_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        report_plugin_failure(name, f"cannot be imported from {path}", strict)
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        report_plugin_failure(name, f"failed to import from {path} ({exception_summary(exc)})",
                              strict)
        return None
    sys.modules[mod_name] = module
    return module


def get_plugin_manager(
    *,
    plugins_dir: str | Path | Iterable[str | Path] | None = None,
    entry_points: bool = True,
    plugins: Iterable[object] = (),
    strict: bool | None = None,
) -> pluggy.PluginManager:
    """Build a fresh plugin manager.

    Loads the ``medseg`` entry-point group (built-ins and installed third-party plugins),
    then single-file plugins from ``plugins_dir`` and ``$MEDSEG_PLUGINS_DIR``, then the given
    ``plugins`` objects. A plugin that fails to import or register is skipped with a
    :class:`PluginWarning` naming it, unless strict mode (``MEDSEG_STRICT_PLUGINS=1``).
    """
    strict = strict_mode(strict)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if entry_points:
        load_entry_points(pm, strict)
    for folder in plugin_dirs(plugins_dir):
        load_plugins_dir(pm, folder, strict)
    for i, plugin in enumerate(plugins):
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{i}"
        _register(pm, plugin, name, strict)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        bad = pm.get_name(exc.plugin) or repr(exc.plugin)
        pm.unregister(exc.plugin)
        report_plugin_failure(bad, f"implements an unknown hook ({exception_summary(exc)})", strict)
    return pm
