"""Built-in model format: MONAI bundles in the model-zoo layout (``configs/metadata.json``,
``configs/inference.json``, ``models/model.pt`` or ``models/model.ts``), run with the bundle's
own preprocessing, inferer and postprocessing. Bundles hold code, so they run only when
trusted (option ``trust``, ``MEDSEG_TRUSTED_BUNDLES``); see docs/models.md."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.models.monai_bundle.describe import describe_monai_bundle
from medseg.models.monai_bundle.layout import FORMAT, sniff_monai_bundle
from medseg.models.monai_bundle.model import load_monai_bundle
from medseg.specs import ModelFormatSpec


@hookimpl
def medseg_register_model_formats() -> list[ModelFormatSpec]:
    return [
        ModelFormatSpec(
            name=FORMAT,
            sniff=sniff_monai_bundle,
            load=load_monai_bundle,
            describe=describe_monai_bundle,
            description="MONAI bundle: configs/inference.json + models/model.pt (runs the "
                        "bundle's own transforms and inferer; needs trust when it holds code)",
            options=("trust",),
            priority=10,
        ),
    ]
