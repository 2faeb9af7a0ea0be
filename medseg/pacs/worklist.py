"""A worklist: the studies to segment (repeated ``--study`` or a CSV of study UIDs), planned
into one case per series through QIDO-RS.

A CSV holds a header with a ``StudyInstanceUID`` (or ``study``) column, optionally a
``SeriesInstanceUID`` (or ``series``) column; or no header and the study UID first on each line.
A study that cannot be planned (unknown UID, no series of the model's modality) becomes a
failed entry and the others go on.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError, MedsegError
from medseg.io.names import series_case_name
from medseg.pacs.client import Server, ServerError
from medseg.pacs.query import check_uid, choose_series, list_series

_STUDY_KEYS = ("studyinstanceuid", "study", "study_uid")
_SERIES_KEYS = ("seriesinstanceuid", "series", "series_uid")


@dataclass(frozen=True)
class Request:
    """One line of a worklist: a study, and a series when the line names one."""

    study: str
    series: str | None = None


@dataclass(frozen=True)
class PacsCase:
    """One series to segment; ``name`` names the output files: readable and unique, made from
    the series date, modality, series number and a hash of the SeriesInstanceUID
    (:func:`medseg.io.names.series_case_name`); the UIDs stay in ``summary.json``."""

    study: str
    series: str
    modality: str
    description: str
    instances: int | None
    date: str = ""
    number: str = ""

    @property
    def name(self) -> str:
        return series_case_name(self.series, self.date, self.modality, self.number)


@dataclass(frozen=True)
class Unplanned:
    """A worklist line that could not become a case, and why."""

    study: str
    message: str


def read_worklist(path: str | Path) -> list[Request]:
    """The requests of a CSV worklist, in file order, duplicates dropped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise InputError(path, "worklist not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"worklist is not readable text ({type(exc).__name__})") from None
    rows = [r for r in csv.reader(lines) if r and any(c.strip() for c in r)]
    if not rows:
        raise InputError(path, "worklist holds no study")
    header = [c.strip().lower() for c in rows[0]]
    study_col = next((header.index(k) for k in _STUDY_KEYS if k in header), None)
    series_col = next((header.index(k) for k in _SERIES_KEYS if k in header), None)
    if study_col is None:
        study_col, body = 0, rows
    else:
        body = rows[1:]
    out: list[Request] = []
    for number, row in enumerate(body, start=2 if body is not rows else 1):
        try:
            study = check_uid(row[study_col], "study")
            cell = row[series_col].strip() if series_col is not None and \
                series_col < len(row) else ""
            series = check_uid(cell, "series") if cell else None
        except (MedsegError, IndexError) as exc:
            raise InputError(path, f"line {number}: {exc}") from None
        request = Request(study, series)
        if request not in out:
            out.append(request)
    if not out:
        raise InputError(path, "worklist holds no study")
    return out


def requests_from(studies: Sequence[str], series: str | None = None,
                  worklist: str | Path | None = None) -> list[Request]:
    """``--study`` (repeated), ``--series`` (with one study only) and ``--worklist``."""
    if series is not None and (len(studies) != 1 or worklist):
        raise MedsegError("--series needs exactly one --study (and no --worklist)")
    out = [Request(check_uid(s, "study"), check_uid(series, "series") if series else None)
           for s in studies]
    if worklist:
        out += read_worklist(worklist)
    if not out:
        raise MedsegError("--dicomweb needs --study UID (repeatable) or --worklist CSV")
    return list(dict.fromkeys(out))


def plan(client, server: Server, requests: Sequence[Request], modality: str | None
         ) -> list[PacsCase | Unplanned]:
    """One :class:`PacsCase` per series to segment (QIDO-RS per study), in worklist order."""
    planned: list[PacsCase | Unplanned] = []
    for req in requests:
        try:
            rows = list_series(client, server, req.study)
            if req.series is not None:
                chosen: list[Mapping[str, Any]] = [
                    r for r in rows if r["SeriesInstanceUID"] == req.series]
                if not chosen:
                    raise ServerError(server.url, f"series {req.series} not found in study "
                                                  f"{req.study}")
            else:
                chosen = choose_series(rows, modality, server=server, study=req.study)
            cases = [_case(req.study, r, server) for r in chosen]
        except MedsegError as exc:
            planned.append(Unplanned(req.study, str(exc)))
            continue
        planned.extend(cases)
    return planned


def _case(study: str, row: Mapping[str, Any], server: Server) -> PacsCase:
    """A case from a QIDO row; its SeriesInstanceUID names files, so it must be a UID."""
    try:
        series = check_uid(str(row["SeriesInstanceUID"]), "series")
    except MedsegError as exc:
        raise ServerError(server.url, f"listing series of study {study}: a bad "
                                      f"SeriesInstanceUID in the answer ({exc})") from None
    count = row["NumberOfSeriesRelatedInstances"]
    return PacsCase(study, series, str(row["Modality"]), str(row["SeriesDescription"]),
                    int(count) if str(count).isdigit() else None,
                    date=str(row.get("SeriesDate") or ""), number=str(row["SeriesNumber"]))
