"""Subgroup summaries (site, scanner, sex, ...) from a metadata table.

The metadata is a CSV with a ``case`` column (the case names of the evaluated folders) and one
column per attribute. Each ``--by`` column is its own grouping (``--by site --by scanner``
gives one table per site and one per scanner, not their cross product). Per subgroup, class
and metric the statistics are those of :func:`medseg.evaluation.report.describe` over the subgroup's
cases; a subgroup with fewer than ``min_n`` finite values is shown with its n and mean but
without a CI (``ci_low``/``ci_high`` None): a bootstrap over a handful of cases is not an
interval anyone should read. Cases the metadata does not list fall in the group
``(missing)``; an empty cell in ``(blank)``.

:func:`dicom_metadata` offers the acquisition tags of a DICOM series (Manufacturer,
ManufacturerModelName, SliceThickness, PatientSex) as metadata; it reads only those tags, so
no patient identifier (name, ID, birth date, accession number, UIDs) reaches the report.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.evaluation.intervals import DEFAULT_MIN_N as DEFAULT_STATS_MIN_N
from medseg.evaluation.intervals import StatsOptions
from medseg.evaluation.report import describe
from medseg.io.dicom import _iter_files, dcmread, sniff_dicom_file

#: a subgroup needs at least this many finite values to get a CI (the study's default)
DEFAULT_MIN_N = DEFAULT_STATS_MIN_N
#: the only DICOM attributes read as metadata (none identifies a patient)
DICOM_TAGS = ("Manufacturer", "ManufacturerModelName", "SliceThickness", "PatientSex")
MISSING = "(missing)"
BLANK = "(blank)"
MAX_BYTES = 50_000_000


def read_metadata(path: str | Path, by: Sequence[str] = ()) -> dict[str, dict[str, str]]:
    """``{case: {column: value}}`` from a CSV with a ``case`` column; ``by`` must be columns."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "metadata file not found")
    if path.stat().st_size > MAX_BYTES:
        raise InputError(path, f"metadata file is larger than {MAX_BYTES} bytes")
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    try:
        reader = csv.DictReader(io.StringIO(text))
        columns = [c.strip() for c in (reader.fieldnames or [])]
        rows = list(reader)
    except csv.Error as exc:
        raise InputError(path, f"not a readable CSV ({exc})") from None
    if "case" not in columns:
        raise InputError(path, f"metadata CSV has no 'case' column (columns: "
                               f"{', '.join(columns) or 'none'})")
    missing = [b for b in by if b not in columns]
    if missing:
        raise InputError(path, f"--by {', '.join(missing)}: no such column (columns: "
                               f"{', '.join(c for c in columns if c != 'case')})")
    out: dict[str, dict[str, str]] = {}
    for i, row in enumerate(rows, 2):
        clean = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        case = clean.get("case", "")
        if not case:
            raise InputError(path, f"line {i}: empty case name")
        if case in out:
            raise InputError(path, f"line {i}: case {case!r} is listed twice")
        out[case] = clean
    return out


def group_of(case: str, column: str, metadata: Mapping[str, Mapping[str, str]]) -> str:
    if case not in metadata:
        return MISSING
    return metadata[case].get(column, "") or BLANK


def subgroup_summary(
    rows: Sequence[Mapping[str, Any]],
    metadata: Mapping[str, Mapping[str, str]],
    by: Sequence[str],
    metrics: Sequence[str],
    *,
    min_n: int = DEFAULT_MIN_N,
    stats: StatsOptions | None = None,
) -> list[dict[str, Any]]:
    """One row per grouping column, subgroup, class and metric (see the module docstring)."""
    out: list[dict[str, Any]] = []
    stats_opts = stats
    scored = [r for r in rows if r.get("label") is not None and r.get("status") != "error"]
    classes = list(dict.fromkeys(r["class"] for r in scored))
    for column in by:
        groups = sorted({group_of(r["case"], column, metadata) for r in scored})
        for group in groups:
            in_group = [r for r in scored if group_of(r["case"], column, metadata) == group]
            n_cases = len({r["case"] for r in in_group})
            for name in classes:
                class_rows = [r for r in in_group if r["class"] == name]
                for metric in metrics:
                    stats = describe([r.get(metric) for r in class_rows],
                                     (stats_opts or StatsOptions()).replace(min_n=min_n),
                                     cases=[r["case"] for r in class_rows])
                    ci = stats["n"] >= min_n
                    out.append({
                        "by": column, "group": group, "n_cases": n_cases, "class": name,
                        "metric": metric, "n": stats["n"], "n_nan": stats["n_nan"],
                        "mean": stats["mean"], "std": stats["std"], "median": stats["median"],
                        "ci_low": stats["ci_low"] if ci else None,
                        "ci_high": stats["ci_high"] if ci else None,
                        "ci_note": "" if ci else f"n < {min_n}: no CI",
                    })
    return out


def dicom_metadata(path: str | Path) -> dict[str, str]:
    """The :data:`DICOM_TAGS` of the first DICOM file of a series (folder) or of one file.

    Values are strings (empty when the tag is absent); nothing else is read or returned.
    """

    path = Path(path)
    files = [path] if path.is_file() else [p for p in _iter_files(path) if sniff_dicom_file(p)]
    if not files:
        raise InputError(path, "no DICOM file found")
    try:
        ds = dcmread(files[0], stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types on corrupt headers
        raise InputError(files[0], f"unreadable DICOM header ({type(exc).__name__})") from None
    out = {}
    for tag in DICOM_TAGS:
        value = ds.get(tag, "")
        value = "" if value is None else str(value).strip()
        if tag == "SliceThickness" and value:
            with contextlib.suppress(ValueError):
                value = f"{float(value):g}"
        out[tag] = value
    return out


def dicom_metadata_table(folder: str | Path) -> dict[str, dict[str, str]]:
    """``{case: tags}`` for a folder holding one DICOM series (subfolder or file) per case.

    The case name is the subfolder name, or the file name without ``.dcm``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "DICOM metadata folder not found")
    out: dict[str, dict[str, str]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        case = entry.name[:-4] if entry.name.lower().endswith(".dcm") else entry.name
        out[case] = {"case": case, **dicom_metadata(entry)}
    if not out:
        raise InputError(folder, "holds no DICOM series")
    return out

