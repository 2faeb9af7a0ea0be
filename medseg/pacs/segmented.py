"""Which image series of a study already have a DICOM SEG on the server.

A SEG names the series it segments in its ReferencedSeriesSequence (PS3.3 C.7.4.1.1,
Common Instance Reference module). QIDO-RS does not return sequences reliably, so the SEG
series' metadata is read with WADO-RS (``/studies/S/series/SEG/metadata``): JSON only, no
pixel data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medseg.pacs.client import Server, server_errors
from medseg.pacs.query import check_uid

#: DICOM tags (JSON keys) read from the SEG's metadata
REFERENCED_SERIES = "00081115"
SERIES_UID = "0020000E"
SOP_CLASS = "00080016"
#: Segmentation Storage
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _referenced(item: Mapping[str, Any]) -> set[str]:
    out = set()
    for ref in (item.get(REFERENCED_SERIES) or {}).get("Value") or []:
        for uid in (ref.get(SERIES_UID) or {}).get("Value") or []:
            out.add(str(uid))
    return out


def segmented_series(client, server: Server, study: str,
                     rows: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Source series UID -> the SEG series UIDs that reference it, for the SEG series among
    ``rows`` (the study's series listing, :func:`medseg.pacs.query.list_series`)."""
    study = check_uid(study, "study")
    found: dict[str, list[str]] = {}
    for row in rows:
        if str(row.get("Modality", "")).upper() != "SEG":
            continue
        seg_series = check_uid(str(row["SeriesInstanceUID"]), "series")
        with server_errors(server, f"reading SEG series {seg_series} of study {study}"):
            items = client.retrieve_series_metadata(study, seg_series)
        for item in items:
            sop = ((item.get(SOP_CLASS) or {}).get("Value") or [""])[0]
            if sop and str(sop) != SEG_SOP_CLASS:
                continue
            for source in _referenced(item):
                found.setdefault(source, [])
                if seg_series not in found[source]:
                    found[source].append(seg_series)
    return found


def mark_segmented(rows: Sequence[Mapping[str, Any]],
                   links: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """The listing with a ``SEG`` column: how many SEG series reference each image series
    (empty for the SEG series themselves)."""
    out = []
    for row in rows:
        if str(row.get("Modality", "")).upper() == "SEG":
            mark = ""
        else:
            n = len(links.get(str(row["SeriesInstanceUID"]), ()))
            mark = f"yes ({n})" if n else "no"
        marked: dict[str, Any] = {}
        for key, value in row.items():  # the mark right after the modality, where it is seen
            marked[key] = value
            if key == "Modality":
                marked["SEG"] = mark
        marked.setdefault("SEG", mark)
        out.append(marked)
    return out
