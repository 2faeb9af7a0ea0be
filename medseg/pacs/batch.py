"""Segment series straight from a DICOMweb server, one case per series.

Each case is downloaded into a temporary folder, segmented through
:func:`medseg.engine.batch.segment_cases` (the same outputs, skip-on-rerun and per-case failure
isolation as folder batches; a finished case is skipped before anything is downloaded) and,
with ``push``, its SEG is stored into the source study. With ``push`` a case is done only once
the server has confirmed its SEG: the confirmation is recorded in ``SERIES_pushed.json``
(server, study, series, the SEG's SOPInstanceUID), so a run killed during a push pushes that
SEG on the rerun (the same instance: storing it twice is harmless) without segmenting again.
A case whose push fails is not left looking finished: its mask and SEG are removed so that the
next run redoes it. The ``summary.json`` of the output folder lists every case of the
worklist, failures included; a case failing in any way is that case's error row and the others
go on. Every text in a row is made plain (no control characters: a server's answers can carry
terminal escapes).

The per-case loop runs in one process (no ``torchrun`` split).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from medseg.engine.batch import CaseInput, segment_cases
from medseg.engine.outputs import output_paths
from medseg.errors import MedsegError
from medseg.io.atomic import write_text_atomic
from medseg.io.debughooks import pause_point
from medseg.pacs.client import Server, describe
from medseg.pacs.retrieve import download_series
from medseg.pacs.store import push_seg, same_study_seg
from medseg.pacs.worklist import PacsCase, Unplanned

#: ``report(case_name, message)``: one line per step worth telling
Report = Callable[[str, str], None]


def series_url(server: Server, case: PacsCase) -> str:
    """Where a case comes from, as shown in summaries and errors."""
    return f"{server.url}/studies/{case.study}/series/{case.series}"


def pushed_record(out_dir: Path, case: PacsCase) -> Path:
    """Where the server's confirmation of a case's push is recorded."""
    return Path(out_dir) / f"{case.name}_pushed.json"


def confirmed_push(out_dir: Path, server: Server, case: PacsCase) -> str | None:
    """The SOPInstanceUID the server confirmed for this case's local SEG, or None when that
    SEG (as it is now) was never confirmed there."""
    try:
        doc = json.loads(pushed_record(out_dir, case).read_text())
        seg = pydicom.dcmread(output_paths(out_dir, case.name)["dicom_seg"],
                              stop_before_pixels=True)
    except (OSError, ValueError, InvalidDicomError):
        return None
    uid = str(getattr(seg, "SOPInstanceUID", ""))
    if not isinstance(doc, dict) or doc.get("server") != server.url or \
            doc.get("series") != case.series or doc.get("sop_instance_uid") != uid:
        return None
    return uid


def _record_push(out_dir: Path, server: Server, case: PacsCase, uid: str) -> None:
    write_text_atomic(pushed_record(out_dir, case), json.dumps(
        {"server": server.url, "study": case.study, "series": case.series,
         "sop_instance_uid": uid}, indent=2) + "\n")


def _segment_one(client, server: Server, case: PacsCase, out_dir: Path, segmenter, *,
                 overwrite: bool, push: bool, dicom_seg: bool, keep_patient_data: bool,
                 report: Report) -> dict[str, Any]:
    shown = series_url(server, case)
    paths = output_paths(out_dir, case.name)
    if paths["mask"].exists() and not overwrite:
        # finished earlier? asked of segment_cases with no input to read: a finished case is
        # skipped without a download, anything else is (re)done below with the series
        probe = segment_cases([CaseInput(case.name, Path(tempfile.gettempdir(), "medseg-none",
                                                         case.name))],
                              out_dir, segmenter, progress=False)[0]
        if probe["status"] == "skipped":
            if not push:
                return {**probe, "input": shown}
            uid = confirmed_push(out_dir, server, case)
            if uid is not None:
                return {**probe, "input": shown, "pushed": uid}
            # segmented earlier but its push was never confirmed (a killed run): below, the
            # series is downloaded again (the pushed copy takes the study's attributes from
            # it), segment_cases skips or completes the case, and its SEG is pushed
    if overwrite or not paths["mask"].exists():
        pushed_record(out_dir, case).unlink(missing_ok=True)  # a new SEG: any record is stale
    with tempfile.TemporaryDirectory(prefix="medseg-pacs-") as tmp:
        folder = Path(tmp) / "series"
        try:
            download_series(client, server, case.study, case.series, folder,
                            expected=case.instances)
        except MedsegError as exc:
            return {"case": case.name, "input": shown, "status": "error", "message": str(exc)}
        report(case.name, f"downloaded {len(list(folder.iterdir()))} instances")
        source = {"dicomweb": server.url, "study": case.study, "series": case.series}
        row = segment_cases([CaseInput(case.name, folder, source=source)], out_dir, segmenter,
                            overwrite=overwrite, progress=False,
                            dicom_seg=dicom_seg or push, keep_patient_data=keep_patient_data)[0]
        row["input"] = shown
        if "message" in row:
            row["message"] = row["message"].replace(str(folder), shown)
        if push and row["status"] in ("ok", "skipped"):
            try:
                pause_point("pacs-before-push")
                row["pushed"] = push_seg(client, server,
                                         same_study_seg(paths["dicom_seg"], folder))
                _record_push(out_dir, server, case, row["pushed"])
                report(case.name, f"SEG stored into study {case.study} as {row['pushed']}")
                if row["status"] == "skipped":
                    row.update(status="ok", message="segmented earlier; its push had not been "
                                                    "confirmed, so the SEG was pushed now")
            except MedsegError as exc:
                for key in ("mask", "dicom_seg"):  # not finished: redo on the next run
                    paths[key].unlink(missing_ok=True)
                pushed_record(out_dir, case).unlink(missing_ok=True)
                row.update(status="error", message=f"push failed: {exc}")
    return row


def _plain(value: Any) -> Any:
    """``value`` with every string in it made one plain line."""
    if isinstance(value, str):
        return describe(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def segment_series(client, server: Server, planned: Sequence[PacsCase | Unplanned],
                   out_dir: str | Path, segmenter, *, overwrite: bool = False,
                   push: bool = False, dicom_seg: bool = False,
                   keep_patient_data: bool = False, progress: bool = True,
                   report: Report | None = None) -> list[dict[str, Any]]:
    """One summary row per planned case (status ok/skipped/error), in worklist order; rows
    also carry ``study``, ``series`` and, after a push, ``pushed`` (the SEG's SOP UID)."""
    out_dir = Path(out_dir)
    report = report or (lambda name, message: None)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(planned), desc="segment", unit="case", file=sys.stderr,
                   dynamic_ncols=True)
    for item in planned:
        if isinstance(item, Unplanned):
            row = {"case": item.study, "input": f"{server.url}/studies/{item.study}",
                   "study": item.study, "status": "error", "message": item.message}
        elif item.name in seen:
            continue
        else:
            seen.add(item.name)
            try:
                row = _segment_one(client, server, item, out_dir, segmenter,
                                   overwrite=overwrite, push=push, dicom_seg=dicom_seg,
                                   keep_patient_data=keep_patient_data, report=report)
            except Exception as exc:  # one broken case must not stop the worklist
                row = {"case": item.name, "input": series_url(server, item), "status": "error",
                       "message": f"{series_url(server, item)}: {type(exc).__name__}: {exc}"}
            row.update(study=item.study, series=item.series)
        row = _plain(row)
        rows.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(case=row["case"][-12:], status=row["status"])
    if bar is not None:
        bar.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "summary.json", json.dumps(rows, indent=2) + "\n")
    return rows
