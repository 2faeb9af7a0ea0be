"""The training record of a dataset folder (see :mod:`medseg.qc.record`), read case by case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medseg.io import read_label_map
from medseg.qc.record import RecordBuilder
from medseg.training.dataset import load_dataset, read_case_image


def dataset_training_record(dataset: Any, *, intensity: bool = True) -> dict[str, Any]:
    """The record of a dataset folder's labelled training cases (a path or a loaded
    :class:`medseg.training.dataset.Dataset`), read one case at a time."""
    ds = load_dataset(dataset) if isinstance(dataset, (str, Path)) else dataset
    builder = RecordBuilder(ds.label_names, intensity=intensity)
    for case in ds.training:
        if case.label is None:
            continue
        builder.add(read_label_map(case.label), read_case_image(case) if intensity else None)
    return builder.record()
