"""Built-in model format plugin (being written): registers nothing yet."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.specs import ModelFormatSpec


@hookimpl
def medseg_register_model_formats() -> list[ModelFormatSpec]:
    return []
