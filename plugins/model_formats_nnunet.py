"""Built-in model format: nnU-Net v2 result folders (TotalSegmentator's models among them)."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.models.nnunet import OPTIONS, describe_nnunet, load_nnunet, sniff_nnunet
from medseg.specs import ModelFormatSpec


@hookimpl
def medseg_register_model_formats() -> list[ModelFormatSpec]:
    return [
        ModelFormatSpec(
            name="nnunet_v2",
            sniff=sniff_nnunet,
            load=load_nnunet,
            describe=describe_nnunet,
            description="nnU-Net v2 result folder: <Trainer>__<Plans>__<configuration>/ with "
                        "dataset.json, plans.json, fold_N/checkpoint_final.pth (or its "
                        "DatasetNNN_Name/ folder)",
            options=OPTIONS,
            priority=20,
        ),
    ]
