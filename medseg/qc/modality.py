"""Whether the input is the kind of image the model was made for (CT, MR, ...).

The input's modality is the one its DICOM header declares (``Modality``) when it has one;
otherwise it is guessed from its intensities: a CT stored in Hounsfield units has air at
about -1000 (so its 0.5th percentile lies at or below :data:`CT_AIR_HU`), while MR (and PET,
and a CT stored without its rescale) has no substantial negative part. A model declares its
modality in its own files (a medseg bundle's ``modality``, nnU-Net's ``channel_names``, a
MONAI bundle's ``metadata.json``). Where both are known and differ, QC says ``warn`` with the
reason: a CT model on an MR head labels the brain "liver" without any other clue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.io.dicom import list_series, sniff_dicom_file
from medseg.volume import Volume

#: a 0.5th percentile at or below this (HU) means air in Hounsfield units: a CT
CT_AIR_HU = -500.0
#: share of the 0.5-99.5 percentile range below zero still counted as "no negative values"
NEGATIVE_TOLERANCE = 0.02
#: modalities with intensities in arbitrary (non-Hounsfield) units, as a guess can tell them
NON_CT = ("MR", "PT", "NM", "US")
_SAMPLE = 500_000


@dataclass(frozen=True)
class InputModality:
    """What the input is: ``modality`` (DICOM code, None when unknown), and how it is known
    (``declared`` by DICOM, or guessed with ``reason``)."""

    modality: str | None
    declared: bool
    reason: str

    def describe(self) -> str:
        if self.modality is None:
            return "unknown modality"
        how = "declared in its DICOM header" if self.declared else self.reason
        return f"{self.modality} ({how})"


def _sample(image: Volume) -> np.ndarray:
    arr = np.asarray(image.array[0])
    flat = arr.reshape(-1)
    if flat.size > _SAMPLE:
        flat = flat[:: flat.size // _SAMPLE]
    return flat[np.isfinite(flat)].astype(np.float64)


def guess_modality(image: Volume) -> InputModality:
    """CT when the intensities hold air in Hounsfield units; "MR" (any modality in arbitrary,
    non-negative units) when they hold no substantial negative part; else unknown."""
    values = _sample(image)
    if values.size == 0:
        return InputModality(None, False, "no finite intensity")
    lo, hi = np.percentile(values, [0.5, 99.5])
    if lo <= CT_AIR_HU:
        return InputModality("CT", False, f"intensities from {lo:.0f} (0.5th percentile): air "
                                          "in Hounsfield units")
    if lo >= -NEGATIVE_TOLERANCE * max(hi - lo, 1e-6):
        return InputModality("MR", False, f"intensities {max(lo, 0):.4g}..{hi:.4g} (0.5-99.5th "
                                          "percentiles) with no air at -1000: not Hounsfield "
                                          "units")
    return InputModality(None, False, "intensities neither Hounsfield units nor non-negative")


def declared_modality(path: str | Path) -> str | None:
    """The Modality a DICOM input (a series folder or one file) declares; None for other
    inputs, or a folder whose series disagree."""
    path = Path(path)
    try:
        if path.is_dir():
            found = {str(s["modality"]).upper() for s in list_series(path) if s["modality"]}
        elif path.is_file() and sniff_dicom_file(path):
            found = {str(s["modality"]).upper() for s in list_series(path.parent)
                     if s["modality"]}
        else:
            return None
    except Exception:  # an unreadable header: the reader reports it; QC then guesses
        return None
    return found.pop() if len(found) == 1 else None


def input_modality(image: Volume, declared: str | None = None) -> InputModality:
    """The DICOM-declared modality when given, else the guess from the intensities."""
    if declared and str(declared).strip():
        return InputModality(str(declared).strip().upper(), True, "")
    return guess_modality(image)


def _matches(model: str, found: InputModality) -> bool:
    model = model.strip().upper()
    if found.declared:
        return model == found.modality
    # a guess tells only CT from not-CT (MR, PET... all have arbitrary units)
    return (model == "CT") == (found.modality == "CT")


def modality_problems(image: Volume, models: Sequence[Any],
                      declared: str | None = None) -> list[str]:
    """One message per model whose declared modality the input is not (QC's ``modality``
    check, :func:`medseg.qc.checks.check_segmentation`)."""
    wanted = [(m.name, str(m.modality)) for m in models if getattr(m, "modality", None)]
    if not wanted:
        return []
    found = input_modality(image, declared)
    if found.modality is None:
        return []
    return [f"model {name} is made for {modality} images, but the input is "
            f"{found.describe()}" for name, modality in wanted if not _matches(modality, found)]
