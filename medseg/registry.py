"""Typed registries collected from the ``medseg_register_*`` hooks of a plugin manager."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pluggy

from medseg.errors import PluginError, exception_summary
from medseg.plugins import get_plugin_manager, report_plugin_failure, strict_mode
from medseg.specs import (
    ArchitectureSpec,
    LossSpec,
    MetricSpec,
    ModelFormatSpec,
    PostprocessorSpec,
    ReaderSpec,
)

S = TypeVar("S")

#: kind -> (hook name, spec type)
KINDS: dict[str, tuple[str, type]] = {
    "architecture": ("medseg_register_architectures", ArchitectureSpec),
    "loss": ("medseg_register_losses", LossSpec),
    "postprocessor": ("medseg_register_postprocessors", PostprocessorSpec),
    "reader": ("medseg_register_readers", ReaderSpec),
    "metric": ("medseg_register_metrics", MetricSpec),
    "model_format": ("medseg_register_model_formats", ModelFormatSpec),
}


@dataclass
class ComponentTable(Generic[S]):
    """Name -> spec for one kind, remembering which plugin provided each."""

    kind: str
    specs: dict[str, S] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)

    def add(self, spec: S, plugin: str) -> None:
        name = spec.name  # type: ignore[attr-defined]
        if name in self.specs:
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by plugin "
                f"{self.providers[name]!r} and by plugin {plugin!r}"
            )
        self.specs[name] = spec
        self.providers[name] = plugin

    def get(self, name: str) -> S:
        try:
            return self.specs[name]
        except KeyError:
            available = ", ".join(sorted(self.specs)) or "none"
            raise PluginError(f"unknown {self.kind} {name!r}; available: {available}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.specs))

    def __len__(self) -> int:
        return len(self.specs)


@dataclass
class Registry:
    """Everything the plugins contribute, by kind."""

    architectures: ComponentTable[ArchitectureSpec]
    losses: ComponentTable[LossSpec]
    postprocessors: ComponentTable[PostprocessorSpec]
    readers: ComponentTable[ReaderSpec]
    metrics: ComponentTable[MetricSpec]
    model_formats: ComponentTable[ModelFormatSpec] = field(
        default_factory=lambda: ComponentTable[ModelFormatSpec]("model format"))
    plugin_manager: pluggy.PluginManager | None = None

    def table(self, kind: str) -> ComponentTable[Any]:
        tables: dict[str, ComponentTable[Any]] = {
            "architecture": self.architectures,
            "loss": self.losses,
            "postprocessor": self.postprocessors,
            "reader": self.readers,
            "metric": self.metrics,
            "model_format": self.model_formats,
        }
        return tables[kind]

    def describe(self) -> list[dict[str, Any]]:
        """One row per component: kind, name, plugin, description (for ``medseg plugins``)."""
        rows = []
        for kind in KINDS:
            table = self.table(kind)
            for name in table:
                spec = table.specs[name]
                rows.append({
                    "kind": kind,
                    "name": name,
                    "plugin": table.providers[name],
                    "description": getattr(spec, "description", ""),
                })
        return rows

    def readers_by_priority(self) -> list[ReaderSpec]:
        return sorted(self.readers.specs.values(), key=lambda r: -r.priority)

    def model_formats_by_priority(self) -> list[ModelFormatSpec]:
        return sorted(self.model_formats.specs.values(), key=lambda f: -f.priority)


def build_registry(pm: pluggy.PluginManager, *, strict: bool | None = None) -> Registry:
    """Call every ``medseg_register_*`` implementation, one plugin at a time.

    A plugin whose hook raises or returns the wrong type is skipped with a warning naming it
    (fatal in strict mode); a duplicate component name is always an error naming both plugins.
    """
    strict = strict_mode(strict)
    tables = {kind: ComponentTable[Any](kind.replace("_", " ")) for kind in KINDS}
    for kind, (hook_name, spec_type) in KINDS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():  # registration order
            plugin = impl.plugin_name
            try:
                result = impl.function()
            except Exception as exc:
                report_plugin_failure(plugin, f"raised in {hook_name} ({exception_summary(exc)})",
                                      strict)
                continue
            if result is None:
                continue
            items = list(result) if isinstance(result, (list, tuple)) else [result]
            bad = [r for r in items if not isinstance(r, spec_type)]
            if bad:
                report_plugin_failure(
                    plugin,
                    f"returned {type(bad[0]).__name__} from {hook_name}, "
                    f"expected {spec_type.__name__}",
                    strict,
                )
                continue
            for spec in items:
                tables[kind].add(spec, plugin)
    return Registry(
        architectures=tables["architecture"],
        losses=tables["loss"],
        postprocessors=tables["postprocessor"],
        readers=tables["reader"],
        metrics=tables["metric"],
        model_formats=tables["model_format"],
        plugin_manager=pm,
    )


_DEFAULT: dict[tuple, Registry] = {}


def load_registry(plugins_dir: str | Path | None = None, *, fresh: bool = False) -> Registry:
    """The registry of installed plugins (plus a plugins folder), cached per folder.

    Built on first use, never at import. ``fresh=True`` rebuilds it.
    """
    import os

    key = (str(plugins_dir), os.environ.get("MEDSEG_PLUGINS_DIR", ""))
    if fresh or key not in _DEFAULT:
        _DEFAULT[key] = build_registry(get_plugin_manager(plugins_dir=plugins_dir))
    return _DEFAULT[key]
