"""Open a model of any registered format from a folder or a catalogue name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medseg.errors import InputError, MedsegError, PluginError, exception_summary
from medseg.models.base import ModelInfo, SegmentationModel
from medseg.models.catalog import find_model, list_models, sniff_format
from medseg.registry import Registry, load_registry
from medseg.specs import ModelFormatSpec


def resolve_model(name_or_path: str | Path,
                  registry: Registry | None = None) -> tuple[Path, ModelFormatSpec]:
    """The model folder and its format, from a path or a name in the catalogue."""
    reg = registry or load_registry()
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        entry = find_model(str(name_or_path), reg)
        if entry is None:
            if path.exists():
                raise InputError(path, "a model is a folder, not a file")
            names = ", ".join(e.name for e in list_models(reg)) or "none"
            raise InputError(path, f"model not found (a model folder, or one of: {names})")
        path = entry.path
    fmt = sniff_format(path, reg)
    if fmt is None:
        known = ", ".join(reg.model_formats) or "none"
        raise InputError(path, f"not a model folder of any known format ({known})")
    return path, reg.model_formats.get(fmt)


def describe_model(name_or_path: str | Path, registry: Registry | None = None) -> ModelInfo:
    """Metadata only (no weights are read)."""
    reg = registry or load_registry()
    path, spec = resolve_model(name_or_path, reg)
    return _call(spec, "describe", spec.describe, path)


def format_options(spec: ModelFormatSpec, options: dict[str, Any],
                   where: str | Path) -> dict[str, Any]:
    """``options`` with ``None`` values dropped, checked against what the format takes (its
    :attr:`ModelFormatSpec.options`): one it does not take is a one-line error naming the
    model and the options it does take."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(spec.options))
    if unknown:
        takes = ", ".join(spec.options) or "no options"
        raise InputError(where, f"{spec.name} models do not take "
                                f"{', '.join('--' + u.replace('_', '-') for u in unknown)} "
                                f"(they take: {takes})")
    return given


def load_model(name_or_path: str | Path, registry: Registry | None = None,
               device: Any = None, **options: Any) -> SegmentationModel:
    """Load a runnable model. ``options`` are format options (``configuration``, ``folds``,
    ``checkpoint``, ``trust``...); ``None`` values are dropped and one the format does not
    take is an error."""
    reg = registry or load_registry()
    path, spec = resolve_model(name_or_path, reg)
    options = format_options(spec, options, path)
    model = _call(spec, "load", spec.load, path, registry=reg, device=device, **options)
    if not isinstance(getattr(model, "info", None), ModelInfo):
        raise PluginError(f"model format {spec.name!r} of plugin "
                          f"{reg.model_formats.providers.get(spec.name, '?')!r} returned "
                          f"{type(model).__name__}, not a model with a ModelInfo")
    return model


def _call(spec: ModelFormatSpec, what: str, fn, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except MedsegError:
        raise
    except Exception as exc:
        raise PluginError(f"model format {spec.name!r} failed to {what} {args[0]}: "
                          f"{exception_summary(exc)}") from None
