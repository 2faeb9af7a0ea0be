"""Case names from file names: one rule for segmenting, pairing and reporting."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

#: endings of images medseg reads (a ``.zip`` or ``.dcm`` is a DICOM input)
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".jpg", ".jpeg",
                  ".tif", ".tiff", ".bmp", ".zip", ".dcm")
#: endings of label maps that evaluation pairs by case name
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
#: nnU-Net's suffix of the first input channel (``case_0000.nii.gz`` is case ``case``)
CHANNEL_SUFFIX = "_0000"


def case_name(path: str | Path, suffixes: Sequence[str] = IMAGE_SUFFIXES, *,
              bare: bool = False) -> str | None:
    """The case a file holds: its name without the longest of ``suffixes`` it ends with (any
    letter case) and without nnU-Net's channel suffix ``_0000``.

    A name that ends in none of ``suffixes``, or of which nothing would be left, is no case
    (None), unless ``bare``: then the whole name (a DICOM folder's) is the case.
    """
    name = Path(path).name
    stem: str | None = name if bare else None
    for suffix in sorted(suffixes, key=len, reverse=True):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            stem = name[: -len(suffix)]
            break
    if stem and stem.endswith(CHANNEL_SUFFIX) and len(stem) > len(CHANNEL_SUFFIX):
        stem = stem[: -len(CHANNEL_SUFFIX)]
    return stem


#: hex digits of a UID's SHA-256 kept in a series case name
UID_DIGEST = 8


def series_case_name(uid: str, date: str = "", modality: str = "", number: str = "") -> str:
    """A short, readable case name for a DICOM series instead of its 64-character UID:
    ``<date>_<modality><number>_<hash>`` (``20240101_CT1_3f9a2c1b``), parts left out when
    unknown; each part keeps letters, digits and ``-`` only. The hash is the first
    :data:`UID_DIGEST` hex digits of the SHA-256 of ``uid``: series of one study that share
    date, modality and number still get different names. No patient attribute goes into it (a
    file name travels further than the file's de-identified content)."""

    def clean(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9-]+", "", str(text))

    digest = hashlib.sha256(str(uid).encode("ascii", "replace")).hexdigest()[:UID_DIGEST]
    number = str(number).strip()
    series = clean(modality) + (clean(number) if number.isdigit() else "")
    return "_".join(p for p in (clean(date)[:8], series, digest) if p)
