"""Built-in model format: medseg's own bundle (``config.json`` + ``weights.pt``)."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.models.medseg_bundle.model import (
    describe_medseg_bundle,
    load_medseg_bundle,
    sniff_medseg_bundle,
)
from medseg.specs import ModelFormatSpec


@hookimpl
def medseg_register_model_formats() -> list[ModelFormatSpec]:
    return [
        ModelFormatSpec(
            name="medseg",
            sniff=sniff_medseg_bundle,
            load=load_medseg_bundle,
            describe=describe_medseg_bundle,
            description="medseg bundle: config.json + weights.pt (checksummed state dict)",
            priority=30,
        ),
    ]
