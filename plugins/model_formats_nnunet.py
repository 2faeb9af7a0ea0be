"""Built-in model format: nnU-Net v2 result folders (TotalSegmentator's models among them)."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
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
    ]
