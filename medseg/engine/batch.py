"""Batch segmentation: expand inputs into cases, run each, report per case, resume.

One failing case (a missing file included) is reported and the others still run. A case is
done when its manifest (written last) lists every output now requested; it is then skipped
unless ``overwrite``, and its row reports the recorded results. Under ``torchrun`` each rank
takes every WORLD_SIZE-th case.

Outputs are written atomically (a hidden ``.<name>.<host>-<pid>.*.part*`` temporary renamed
into place), so a run killed at any moment leaves complete files only; temporaries whose
writer process has ended are removed when a later run reaches that case (a live or paused
writer's are left alone).
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.engine.manifest import (
    BASE_OUTPUTS,
    manifest_path,
    missing_outputs,
    read_manifest,
    write_manifest,
)
from medseg.engine.outputs import output_paths, write_segmentation
from medseg.engine.segmenter import Segmentation
from medseg.errors import InputError, MedsegError
from medseg.io import read_image, read_label_map
from medseg.io.atomic import part_writer_gone, write_text_atomic
from medseg.io.debughooks import pause_point
from medseg.io.dicom import sniff_dicom_file
from medseg.io.dicom_seg import write_dicom_seg
from medseg.io.limits import working_bytes_per_voxel, working_memory
from medseg.io.names import IMAGE_SUFFIXES, case_name
from medseg.prompts.types import PromptSpec
from medseg.qc.modality import declared_modality


@dataclass(frozen=True)
class CaseInput:
    name: str
    path: Path
    #: why this input cannot be segmented (missing file, empty folder...): reported as the
    #: case's error while the other cases run
    error: str | None = None
    #: a promptable model's prompts for this case (world mm or voxels; checked on the image)
    prompts: PromptSpec | None = None
    #: where the input came from when its name does not say (a PACS series' UIDs), recorded
    #: in the manifest's result
    source: dict[str, str] | None = None




def _is_dicom_folder(path: Path) -> bool:
    return any(sniff_dicom_file(p) for p in path.iterdir() if p.is_file())


def expand_inputs(inputs: Iterable[str | Path]) -> list[CaseInput]:
    """Files, DICOM series folders, folders of images, and glob patterns -> unique cases."""
    cases: list[CaseInput] = []
    for item in inputs:
        text = str(item)
        matches = sorted(glob.glob(text)) if any(ch in text for ch in "*?[") else [text]
        if not matches:
            cases.append(CaseInput(case_name(Path(text), bare=True) or text, Path(text),
                                   "no file matches this pattern"))
            continue
        for m in matches:
            p = Path(m)
            if not p.exists():
                cases.append(CaseInput(case_name(p, bare=True) or p.name, p, "file not found"))
                continue
            if p.is_dir() and not _is_dicom_folder(p):
                files = sorted(f for f in p.iterdir() if f.is_file()
                               and f.name.lower().endswith(IMAGE_SUFFIXES))
                subdirs = sorted(d for d in p.iterdir() if d.is_dir() and _is_dicom_folder(d))
                if not files and not subdirs:
                    cases.append(CaseInput(p.name, p, "folder holds no images or DICOM series"))
                    continue
                cases += [CaseInput(case_name(f, bare=True) or f.name, f) for f in files]
                cases += [CaseInput(d.name, d) for d in subdirs]
            else:
                cases.append(CaseInput(case_name(p, bare=True) or p.name, p))
    seen: dict[str, Path] = {}
    for c in cases:
        if c.name in seen and seen[c.name] != c.path:
            raise InputError(c.path, f"case name {c.name!r} also used by {seen[c.name]}")
        seen[c.name] = c.path
    return list({c.name: c for c in cases}.values())


def remove_stale_parts(out_dir: Path, names: Iterable[str]) -> list[Path]:
    """Delete the atomic-write temporaries of ``names`` (files in ``out_dir``) whose writer
    process has ended (leftovers of a killed run), never a live or paused writer's."""
    removed = []
    for name in names:
        for part in out_dir.glob(f".{glob.escape(name)}.*.part*"):
            try:
                if part_writer_gone(part):
                    part.unlink()
                    removed.append(part)
            except FileNotFoundError:  # its writer finished or another run removed it
                continue
    return removed


def prompt_record(spec: PromptSpec) -> dict[str, Any]:
    """The prompts of a case as its manifest records them (other prompts redo the case)."""
    return {"voxel": spec.voxel, "init": spec.init,
            "points": [[*p.position, "+" if p.positive else "-"] for p in spec.points],
            "boxes": [[*b.lo, *b.hi] for b in spec.boxes],
            **({"answer": spec.answer + 1} if spec.answer else {})}


def requested_outputs(case: CaseInput, segmenter, dicom_seg: bool) -> set[str]:
    """The outputs a case must have to count as done with these settings."""
    kinds = set(BASE_OUTPUTS)
    if getattr(getattr(segmenter, "settings", None), "probabilities", False):
        kinds.add("probabilities")
    if dicom_seg and is_dicom_input(case.path):
        kinds.add("dicom_seg")
    return kinds


def is_dicom_input(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() == ".zip"


def _settings(segmenter, dicom_seg: bool, keep_patient_data: bool) -> dict[str, Any]:
    s = getattr(segmenter, "settings", None)
    return {"model": getattr(segmenter, "name", ""),
            "overlap": getattr(s, "overlap", None), "mirror": getattr(s, "mirror", False),
            "fast": getattr(s, "fast", False),
            "postprocessors": [list(p) for p in getattr(s, "postprocessors", [])],
            "dicom_seg": dicom_seg, "keep_patient_data": keep_patient_data}


def _write_seg(result, case: CaseInput, target: Path, segmenter, keep_patient_data: bool,
               keep: dict[str, bool] | None = None):
    """``keep``: what the SEG may keep beyond the de-identification profile
    (``keep_dates``, ``keep_institution``; see :mod:`medseg.io.deid`)."""

    keep = keep or {}
    return write_dicom_seg(result, case.path, target, keep_patient_data=keep_patient_data,
                           segment_codes=getattr(segmenter, "segment_codes", None),
                           keep_dates=bool(keep.get("keep_dates")),
                           keep_institution=bool(keep.get("keep_institution")))


def _segment_case(case: CaseInput, out_dir: Path, segmenter, requested: set[str], *,
                  keep_patient_data: bool, settings: dict[str, Any],
                  keep: dict[str, bool] | None = None) -> dict[str, Any]:
    """Read, segment and write every requested output; the manifest last."""
    paths = output_paths(out_dir, case.name)
    t0 = time.time()
    per_voxel = getattr(segmenter, "input_bytes_per_voxel", None)
    with working_memory(per_voxel() if per_voxel else working_bytes_per_voxel()):
        image = read_image(case.path)  # refused from its header when segmenting it cannot fit
    declared = declared_modality(case.path)  # DICOM's Modality, for QC's modality check
    extra: dict[str, Any] = {"modality": declared} if declared else {}
    if case.prompts is not None:
        extra["prompts"] = case.prompts
    result = segmenter(image, where=str(case.path), **extra)
    written = write_segmentation(result, image, out_dir, case.name, model=segmenter.name)
    pause_point("after-mask")
    if "dicom_seg" in requested:
        written["dicom_seg"] = _write_seg(result, case, paths["dicom_seg"], segmenter,
                                          keep_patient_data, keep)
    done: dict[str, Any] = {
        "seconds": round(time.time() - t0, 2), "mask": str(written["mask"]),
        "volumes_ml": {r["name"]: r["volume_ml"] for r in result.volumes()},
        "labels": {str(v): n for v, n in sorted(result.label_names.items())}}
    if case.source:
        done["source"] = dict(case.source)
    if result.qc is not None:
        done.update(qc=result.qc.status, qc_reasons=result.qc.reasons,
                    qc_checked=list(result.qc.checked))
    # a SEG is written for DICOM inputs only: the manifest says what this case got
    write_manifest(out_dir, case.name, written, done,
                   {**settings, "dicom_seg": "dicom_seg" in requested})
    return {"status": "ok", **done}


def _complete_case(case: CaseInput, out_dir: Path, segmenter, doc: dict[str, Any],
                   missing: set[str], *, keep_patient_data: bool,
                   settings: dict[str, Any],
                   keep: dict[str, bool] | None = None) -> dict[str, Any]:
    """Add a missing DICOM SEG from the case's existing mask (no new segmentation)."""

    paths = output_paths(out_dir, case.name)
    done = dict(doc.get("result") or {})
    labels = read_label_map(paths["mask"])
    names = {int(k): str(v) for k, v in (done.get("labels") or {}).items()} or \
        dict(segmenter.label_names)
    written = {kind: out_dir / entry["file"] for kind, entry in doc["outputs"].items()}
    written["dicom_seg"] = _write_seg(Segmentation(labels, names), case, paths["dicom_seg"],
                                      segmenter, keep_patient_data, keep)
    write_manifest(out_dir, case.name, written, done, {**doc.get("settings", {}), **settings})
    return {"status": "ok", **done,
            "message": f"added {', '.join(sorted(missing))} from the existing mask"}


def segment_cases(cases: list[CaseInput], out_dir: str | Path, segmenter, *,
                  overwrite: bool = False, progress: bool = True, dicom_seg: bool = False,
                  keep_patient_data: bool = False,
                  keep: dict[str, bool] | None = None) -> list[dict[str, Any]]:
    """Segment every case; return one summary row per case (status ok/skipped/error).

    A case is skipped only when its manifest lists every output now requested (see
    :mod:`medseg.engine.manifest`); skipped rows carry the results recorded then. A case whose only
    missing output is its DICOM SEG gets it from the existing mask; any other gap redoes it.
    """
    out_dir = Path(out_dir)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    mine = cases[rank::world]
    rows: list[dict[str, Any]] = []
    settings = _settings(segmenter, dicom_seg, keep_patient_data)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), desc="segment", unit="case", file=sys.stderr,
                   dynamic_ncols=True, position=rank)
    run_settings = settings
    for case in mine:
        settings = run_settings if case.prompts is None else \
            {**run_settings, "prompts": prompt_record(case.prompts)}
        paths = output_paths(out_dir, case.name)
        if out_dir.is_dir():
            remove_stale_parts(out_dir, [p.name for p in paths.values()]
                               + [manifest_path(out_dir, case.name).name])
        row: dict[str, Any] = {"case": case.name, "input": str(case.path)}
        try:
            if case.error:
                raise InputError(case.path, case.error)
            requested = requested_outputs(case, segmenter, dicom_seg)
            doc = None if overwrite else read_manifest(out_dir, case.name)
            done_with = (doc or {}).get("settings", {})
            if doc is not None and (done_with.get("model") != settings["model"]
                                    or done_with.get("prompts") != settings.get("prompts")):
                doc = None  # another model, or other prompts: redo
            missing = missing_outputs(doc, out_dir, requested)
            if doc is not None and not missing:
                row.update({**(doc.get("result") or {}), "status": "skipped",
                            "message": "done earlier (use --overwrite to redo)"})
            elif doc is not None and missing == {"dicom_seg"}:
                row.update(_complete_case(case, out_dir, segmenter, doc, missing,
                                          keep_patient_data=keep_patient_data,
                                          settings=settings, keep=keep))
            else:
                row.update(_segment_case(case, out_dir, segmenter, requested,
                                         keep_patient_data=keep_patient_data,
                                         settings=settings, keep=keep))
        except MedsegError as exc:
            row.update(status="error", message=str(exc))
        except Exception as exc:  # one broken case must not stop the batch
            row.update(status="error", message=f"{case.path}: {type(exc).__name__}: {exc}")
        row.pop("labels", None)
        rows.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(case=case.name, status=row["status"])
    if bar is not None:
        bar.close()
    summary_name = "summary.json" if world == 1 else f"summary_rank{rank}.json"
    if out_dir.is_dir():
        remove_stale_parts(out_dir, [summary_name])
    try:
        write_text_atomic(out_dir / summary_name, json.dumps(rows, indent=2) + "\n")
    except MedsegError as exc:  # the per-case rows still reach the caller (and the screen)
        warnings.warn(f"{exc}; the summary was not written", stacklevel=2)
    return rows
