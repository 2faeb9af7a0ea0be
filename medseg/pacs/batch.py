"""Segment series straight from a DICOMweb server, one case per series.

Each case is downloaded into a temporary folder, segmented through
:func:`medseg.engine.batch.segment_cases` (the same outputs, skip-on-rerun and per-case failure
isolation as folder batches; a finished case is skipped before anything is downloaded) and,
with ``push``, its SEG is stored into the source study. A case whose push fails is not left
looking finished: its mask and SEG are removed so that the next run redoes it. The
``summary.json`` of the output folder lists every case of the worklist, failures included.

The per-case loop runs in one process (no ``torchrun`` split).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medseg.engine.batch import CaseInput, segment_cases
from medseg.engine.outputs import output_paths
from medseg.errors import MedsegError
from medseg.io.atomic import write_text_atomic
from medseg.pacs.client import Server
from medseg.pacs.retrieve import download_series
from medseg.pacs.store import push_seg, same_study_seg
from medseg.pacs.worklist import PacsCase, Unplanned

#: ``report(case_name, message)``: one line per step worth telling
Report = Callable[[str, str], None]


def series_url(server: Server, case: PacsCase) -> str:
    """Where a case comes from, as shown in summaries and errors."""
    return f"{server.url}/studies/{case.study}/series/{case.series}"


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
            return {**probe, "input": shown}
    with tempfile.TemporaryDirectory(prefix="medseg-pacs-") as tmp:
        folder = Path(tmp) / "series"
        try:
            download_series(client, server, case.study, case.series, folder,
                            expected=case.instances)
        except MedsegError as exc:
            return {"case": case.name, "input": shown, "status": "error", "message": str(exc)}
        report(case.name, f"downloaded {len(list(folder.iterdir()))} instances")
        row = segment_cases([CaseInput(case.name, folder)], out_dir, segmenter,
                            overwrite=overwrite, progress=False,
                            dicom_seg=dicom_seg or push, keep_patient_data=keep_patient_data)[0]
        row["input"] = shown
        if "message" in row:
            row["message"] = row["message"].replace(str(folder), shown)
        if push and row["status"] == "ok":
            try:
                row["pushed"] = push_seg(client, server,
                                         same_study_seg(paths["dicom_seg"], folder))
                report(case.name, f"SEG stored into study {case.study} as {row['pushed']}")
            except MedsegError as exc:
                for key in ("mask", "dicom_seg"):  # not finished: redo on the next run
                    paths[key].unlink(missing_ok=True)
                row.update(status="error", message=f"push failed: {exc}")
    return row


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
            row = _segment_one(client, server, item, out_dir, segmenter, overwrite=overwrite,
                               push=push, dicom_seg=dicom_seg,
                               keep_patient_data=keep_patient_data, report=report)
            row.update(study=item.study, series=item.series)
        rows.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(case=row["case"][-12:], status=row["status"])
    if bar is not None:
        bar.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "summary.json", json.dumps(rows, indent=2) + "\n")
    return rows
