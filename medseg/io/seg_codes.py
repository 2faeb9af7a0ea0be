"""Coded concepts for DICOM SEG segments: category, type and laterality of a class name.

Codes come from the DICOM standard's SNOMED CT tables as pydicom ships them
(``pydicom.sr.codedict.codes.SCT``, built from PS3.16), never invented here. A class name such as
``kidney_left``, ``Inferior vena cava`` or ``liver_lesion`` is split into words; ``left`` /
``right`` become the laterality modifier, the remaining words name the type (``grey`` is read as
``gray``; a few abbreviations are spelled out), and the category follows the type: abnormal
structures (lesion, tumour, nodule, mass...), body substances (CSF, blood), tissues (white and
grey matter, fat, muscle, bone) or anatomical structures. A name with no match is coded as
Tissue / Tissue, as before; a model may give its own codes per class
(``{"category": [scheme, value, meaning], "type": [...], "modifier": [...]}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medseg.errors import MedsegError

_ALIASES = {"grey": "gray", "csf": "cerebrospinal fluid", "ivc": "inferior vena cava",
            "tumour": "tumor", "gm": "gray matter", "wm": "white matter",
            "kidneys": "kidney", "lungs": "lung", "vertebrae": "vertebra", "ribs": "rib"}
_LATERALITY = {"left": "Left", "l": "Left", "right": "Right", "r": "Right"}
_ABNORMAL = {"Lesion", "Tumor", "Neoplasm", "Nodule", "Mass", "Cyst", "Metastasis"}
_SUBSTANCE = {"CerebrospinalFluid", "Blood", "Urine", "Bile"}
_TISSUE = {"WhiteMatter", "GrayMatter", "Fat", "AdiposeTissue", "Muscle", "Bone", "Tissue"}


@dataclass(frozen=True)
class SegmentCodes:
    """(scheme, value, meaning) triples for one class."""

    category: tuple[str, str, str]
    type: tuple[str, str, str]
    modifier: tuple[str, str, str] | None = None


def _sct(name: str) -> tuple[str, str, str] | None:
    from pydicom.sr.codedict import codes

    try:
        code = getattr(codes.SCT, name)
    except AttributeError:
        return None
    return (str(code.scheme_designator), str(code.value), str(code.meaning))


def _words(name: str) -> list[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text.lower()) if w]
    return " ".join(_ALIASES.get(w, w) for w in words).split()


def _camel(words: list[str]) -> str:
    return "".join(w.capitalize() for w in words)


def codes_for_name(name: str) -> SegmentCodes:
    """Category, type and laterality of a class from its name (see the module docstring)."""
    words = _words(name)
    side = next((_LATERALITY[w] for w in words if w in _LATERALITY), None)
    words = [w for w in words if w not in _LATERALITY]
    found: tuple[str, tuple[str, str, str]] | None = None
    # the longest run of words that is a known concept, preferring an abnormality (a
    # "liver lesion" is a lesion), then the last words ("inferior vena cava")
    for size in range(len(words), 0, -1):
        for start in range(len(words) - size + 1):
            key = _camel(words[start:start + size])
            code = _sct(key)
            if code is not None and (found is None or key in _ABNORMAL):
                found = (key, code)
        if found is not None:
            break
    if found is None:
        tissue = _sct("Tissue")
        assert tissue is not None
        return SegmentCodes(tissue, tissue, None)
    key, code = found
    if key in _ABNORMAL:
        category = _sct("MorphologicallyAbnormalStructure")
    elif key in _SUBSTANCE:
        category = _sct("BodySubstance")
    elif key in _TISSUE:
        category = _sct("Tissue")
    else:
        category = _sct("AnatomicalStructure")
    assert category is not None
    return SegmentCodes(category, code, _sct(side) if side else None)


def codes_from_config(entry: Mapping[str, Any], where: str) -> SegmentCodes:
    """A model's own codes for one class: ``{"category": [scheme, value, meaning], ...}``."""
    def triple(key: str) -> tuple[str, str, str] | None:
        value = entry.get(key)
        if value is None:
            return None
        if not (isinstance(value, (list, tuple)) and len(value) == 3
                and all(isinstance(v, str) and v for v in value)):
            raise MedsegError(f"{where}: segment code {key!r} must be [scheme, value, meaning]")
        return (value[0], value[1], value[2])

    category, kind = triple("category"), triple("type")
    if category is None or kind is None:
        raise MedsegError(f"{where}: segment codes need 'category' and 'type'")
    return SegmentCodes(category, kind, triple("modifier"))
