"""Built-in model formats: medseg's own bundle (``config.json`` + ``weights.pt``) and the
promptable click3d model (``click3d.json`` + ``model.pt``)."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.models.click3d.model import describe_click3d, load_click3d, sniff_click3d
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
        ModelFormatSpec(
            name="click3d",
            sniff=sniff_click3d,
            load=load_click3d,
            describe=describe_click3d,
            description="click3d: promptable 3-D model (click3d.json + model.pt), points, "
                        "boxes and a mask to refine",
            priority=40,
        ),
    ]
