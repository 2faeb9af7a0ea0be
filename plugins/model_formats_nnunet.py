"""Built-in model formats: nnU-Net v2 result folders (TotalSegmentator's models among them),
and TotalSegmentator's tasks by name (``totalseg:total_fast``...), run on nnU-Net's runtime the
way TotalSegmentator runs them."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.models.totalseg import naming as totalseg
from medseg.specs import ModelFormatSpec


def _sniff(path):
    from medseg.models.nnunet import sniff_nnunet

    return sniff_nnunet(path)


def _load(path, **kwargs):
    from medseg.models.nnunet import load_nnunet

    return load_nnunet(path, **kwargs)


def _describe(path):
    from medseg.models.nnunet import describe_nnunet

    return describe_nnunet(path)


def _load_task(path, **kwargs):
    from medseg.models.totalseg.model import load  # torch and nnU-Net's runtime: deferred

    return load(path, **kwargs)


def _describe_task(path):
    from medseg.models.totalseg.model import describe  # as _load_task

    return describe(path)


@hookimpl
def medseg_register_model_formats() -> list[ModelFormatSpec]:
    return [
        ModelFormatSpec(
            name="nnunet_v2",
            sniff=_sniff,
            load=_load,
            describe=_describe,
            description="nnU-Net v2 result folder: <Trainer>__<Plans>__<configuration>/ with "
                        "dataset.json, plans.json, fold_N/checkpoint_final.pth (or its "
                        "DatasetNNN_Name/ folder)",
            options=("configuration", "folds", "checkpoint"),
            priority=20,
        ),
        ModelFormatSpec(
            name=totalseg.FORMAT,
            sniff=totalseg.sniff,
            load=_load_task,
            describe=_describe_task,
            description="TotalSegmentator task by name (totalseg:total, totalseg:total_fast, "
                        "...): its weights folders used in place, its pipeline reproduced",
            options=totalseg.OPTIONS,
            priority=25,
        ),
    ]
