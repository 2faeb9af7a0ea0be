"""Built-in model formats: medseg's own bundle (``config.json`` + ``weights.pt``), and
SAM-Med3D checkpoints (``sammed3d.json`` + the authors' ``.pth``), a promptable format."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.models.medseg_bundle.model import (
    describe_medseg_bundle,
    load_medseg_bundle,
    sniff_medseg_bundle,
)
from medseg.models.sammed3d import FORMAT as SAMMED3D_FORMAT
from medseg.models.sammed3d import describe as describe_sammed3d
from medseg.models.sammed3d import load as load_sammed3d
from medseg.models.sammed3d import sniff as sniff_sammed3d
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
            name=SAMMED3D_FORMAT,
            sniff=sniff_sammed3d,
            load=load_sammed3d,
            describe=describe_sammed3d,
            description="SAM-Med3D checkpoint: sammed3d.json + the authors' .pth (3-D points "
                        "and a mask to refine; 128^3 crop at 1.5 mm)",
            priority=30,
        ),
    ]
