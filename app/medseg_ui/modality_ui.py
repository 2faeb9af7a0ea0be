"""The input's modality on the Segment page: read from DICOM or guessed from the intensities
(:mod:`medseg.qc.modality`), a model suggested by it, and a banner before running a model
made for another modality."""

from __future__ import annotations

from typing import Any

import streamlit as st

from medseg.qc.modality import InputModality, declared_modality, input_modality
from medseg.qc.modality import modality_problems as problems
from medseg_ui import engine
from medseg_ui.text import plain


def of_input(state: Any, image) -> InputModality:
    """The current input's modality, kept per image in the session."""
    cached = state.get("_modality")
    if cached is None or cached[0] is not image:
        source = state.get("dicom_source")
        declared = declared_modality(source) if source is not None else None
        cached = (image, input_modality(image, declared), declared)
        state["_modality"] = cached
    return cached[1]


def declared(state: Any) -> str | None:
    """The modality the DICOM input declares (None for other inputs)."""
    cached = state.get("_modality")
    return None if cached is None else cached[2]


def suggest(models: list[str], found: InputModality, image) -> str | None:
    """A model for this input: the first that declares its modality; else the only model
    that does not contradict it (one declaring none); else None (the user chooses)."""
    if found.modality is None:
        return None
    fits, unknown = [], []
    for name in models:
        try:
            info = engine.model_info(name)
        except Exception:  # a broken model folder is reported when chosen
            continue
        if info.spatial_dims != image.spatial_ndim or info.in_channels != image.n_channels:
            continue
        if not info.modality:
            unknown.append(name)
        elif not problems(image, [info], found.modality if found.declared else None):
            fits.append(name)
    if fits:
        return fits[0]
    return unknown[0] if len(unknown) == 1 else None


def banner(image, info, found: InputModality, declared_modality_: str | None) -> bool:
    """A warning before running a model made for another modality; True when shown."""
    if info is None:
        return False
    found_problems = problems(image, [info], declared_modality_)
    for message in found_problems:
        st.warning(plain(f"Modality mismatch: {message}. Its result would be meaningless; "
                         "choose a model for this kind of image."),
                   icon=":material/warning:")
    if not found_problems and found.modality:
        st.caption(plain(f"Input: {found.describe()}"))
    return bool(found_problems)
