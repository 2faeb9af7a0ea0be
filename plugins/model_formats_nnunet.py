"""Built-in model formats: nnU-Net v2 result folders (TotalSegmentator's models among them),
and TotalSegmentator's tasks by name (``totalseg:total_fast``...), run on nnU-Net's runtime the
way TotalSegmentator runs them."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.models.nnunet import OPTIONS, describe_nnunet, load_nnunet, sniff_nnunet
from medseg.models.totalseg import naming as totalseg
from medseg.models.totalseg.model import describe as describe_task
from medseg.models.totalseg.model import load as load_task
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
        ModelFormatSpec(
            name=totalseg.FORMAT,
            sniff=totalseg.sniff,
            load=load_task,
            describe=describe_task,
            description="TotalSegmentator task by name (totalseg:total, totalseg:total_fast, "
                        "...): its weights folders used in place, its pipeline reproduced",
            options=totalseg.OPTIONS,
            priority=25,
        ),
    ]
