"""Built-in model formats: medseg's own bundle (``config.json`` + ``weights.pt``) and the
promptable ones: click3d (``click3d.json`` + ``model.pt``), SAM-Med3D checkpoints
(``sammed3d.json`` + the authors' ``.pth``) and SAM-family checkpoints (``sam.json`` + a
SAM/MedSAM state dict)."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.models import sam
from medseg.models.click3d.model import describe_click3d, load_click3d, sniff_click3d
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
