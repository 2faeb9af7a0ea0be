"""QIDO-RS listings of studies and series, and the choice of series a model can segment.

Listings hold patient-free columns by default (dates, modalities, descriptions, counts); the
patient's name and ID are asked for only with ``with_patient=True``. UIDs given by a user are
checked before they go into a URL path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from medseg.errors import MedsegError
from medseg.pacs.client import Server, ServerError, describe, server_errors

#: (keyword, DICOM tag) of the columns each listing shows, in order
STUDY_COLUMNS = (("StudyInstanceUID", "0020000D"), ("StudyDate", "00080020"),
                 ("ModalitiesInStudy", "00080061"), ("StudyDescription", "00081030"),
                 ("NumberOfStudyRelatedSeries", "00201206"),
                 ("NumberOfStudyRelatedInstances", "00201208"))
SERIES_COLUMNS = (("SeriesInstanceUID", "0020000E"), ("Modality", "00080060"),
                  ("SeriesNumber", "00200011"), ("SeriesDescription", "0008103E"),
                  ("NumberOfSeriesRelatedInstances", "00201209"), ("SeriesDate", "00080021"))
PATIENT_COLUMNS = (("PatientID", "00100020"), ("PatientName", "00100010"))
#: series that hold no image to segment (derived objects, reports, RT, presentation states)
NON_IMAGE_MODALITIES = frozenset({"SEG", "SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "RTDOSE",
                                  "REG", "DOC", "OT"})
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def check_uid(uid: str, what: str = "UID") -> str:
    """A DICOM UID (digits and dots, at most 64 characters), or a one-line error."""
    uid = uid.strip()
    if len(uid) > 64 or not _UID.match(uid):
        raise MedsegError(f"{what} {describe(uid)[:80]!r} is not a DICOM UID (digits and dots)")
    return uid


class MalformedAnswerError(ValueError):
    """A QIDO-RS answer that is not DICOM JSON as PS3.18 F.2 defines it."""


def _value(item: Mapping[str, Any], tag: str) -> Any:
    element = item.get(tag)
    if element is None:
        return ""
    if not isinstance(element, dict):
        raise MalformedAnswerError(f"attribute {tag} is {type(element).__name__}, not an object")
    values = element.get("Value")
    if values is None:
        return ""
    if not isinstance(values, list):
        raise MalformedAnswerError(f"the Value of {tag} is {type(values).__name__}, not a list")
    if not values:
        return ""
    if isinstance(values[0], dict):  # person name
        values = [v.get("Alphabetic", "") if isinstance(v, dict) else v for v in values]
    if len(values) > 1:
        return "\\".join(describe(v) for v in values)
    value = values[0]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return describe(value) if value is not None else ""
    return value if isinstance(value, int | float) else describe(value)


def _rows(items: Any, columns) -> list[dict[str, Any]]:
    """One row per answer item; a malformed answer raises :class:`MalformedAnswerError`."""
    if not isinstance(items, list):
        raise MalformedAnswerError(f"the answer is {type(items).__name__}, not a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedAnswerError(f"item {i + 1} is {type(item).__name__}, not an object")
    return [{kw: _value(item, tag) for kw, tag in columns} for item in items]


def list_studies(client, server: Server, *, with_patient: bool = False,
                 filters: Mapping[str, str] | None = None, limit: int = 200
                 ) -> list[dict[str, Any]]:
    """One row per study (QIDO-RS ``/studies``), newest study date first."""
    columns = STUDY_COLUMNS + (PATIENT_COLUMNS if with_patient else ())
    with server_errors(server, "listing studies"):
        items = client.search_for_studies(fields=[kw for kw, _ in columns],
                                          search_filters=dict(filters or {}), limit=limit)
        rows = _rows(items, columns)
    return sorted(rows, key=lambda r: str(r["StudyDate"]), reverse=True)


def list_series(client, server: Server, study: str, *, with_patient: bool = False
                ) -> list[dict[str, Any]]:
    """One row per series of ``study`` (QIDO-RS ``/studies/UID/series``); an error naming the
    server when the study does not exist there."""
    study = check_uid(study, "study")
    columns = SERIES_COLUMNS + (PATIENT_COLUMNS if with_patient else ())
    with server_errors(server, f"listing series of study {study}"):
        items = client.search_for_series(study_instance_uid=study,
                                         fields=[kw for kw, _ in columns])
        rows = _rows(items, columns)
    if not rows:
        raise ServerError(server.url, f"study {study} not found (no series)")
    return sorted(rows, key=lambda r: (str(r["SeriesNumber"]).zfill(8),
                                       str(r["SeriesInstanceUID"])))


def choose_series(rows: Sequence[Mapping[str, Any]], modality: str | None, *, server: Server,
                  study: str) -> list[Mapping[str, Any]]:
    """The image series of a study that a model of ``modality`` can segment: every series of
    that modality; with no modality known, the study's only image series."""
    images = [r for r in rows if str(r["Modality"]).upper() not in NON_IMAGE_MODALITIES]
    listing = ", ".join(f"{r['SeriesInstanceUID']} ({r['Modality'] or '?'}, "
                        f"{r['NumberOfSeriesRelatedInstances']} instances)" for r in images)
    if modality:
        chosen = [r for r in images if str(r["Modality"]).upper() == modality.upper()]
        if not chosen:
            raise ServerError(server.url, f"study {study} has no {modality} series (the model's "
                                          f"modality); image series: {listing or 'none'}")
        return chosen
    if len(images) != 1:
        raise ServerError(server.url, f"study {study} has {len(images)} image series and the "
                                      f"model names no modality; pick one with --series: "
                                      f"{listing or 'none'}")
    return images
