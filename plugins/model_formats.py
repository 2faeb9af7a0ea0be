"""Built-in model formats: medseg's own bundle (``config.json`` + ``weights.pt``) and SAM-family
checkpoints (``sam.json`` + a SAM/MedSAM state dict)."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.models import sam
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
            name=sam.FORMAT,
            sniff=sam.sniff,
            load=sam.load,
            describe=sam.describe,
            description="SAM-family checkpoint (MedSAM ViT-B): sam.json + the state dict; "
                        "promptable (boxes, points), 2-D slices propagated through 3-D",
            options=sam.OPTIONS,
            priority=28,
        ),
    ]
