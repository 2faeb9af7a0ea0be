"""Batch segmentation: expand inputs into cases, run each, report per case, resume.

One failing case is reported and the others still run. A case whose mask already exists is
skipped unless ``overwrite``; under ``torchrun`` each rank takes every WORLD_SIZE-th case.

Outputs are written atomically (a hidden ``.<name>.*.part*`` temporary renamed into place) and
the mask last, so a run killed at any moment leaves complete files only; the temporaries a
killed run left behind are removed when a later run reaches that case (only those older than
the later run's start: a concurrent run's temporaries are newer and left alone).
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError, MedsegError
from medseg.io import NIFTI_SUFFIXES, read_image
from medseg.io.atomic import write_text_atomic
from medseg.io.dicom import sniff_dicom_file
from medseg.outputs import output_paths, write_segmentation

IMAGE_SUFFIXES = (*NIFTI_SUFFIXES, ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".jpg", ".jpeg",
                  ".tif", ".tiff", ".bmp", ".zip", ".dcm")


@dataclass(frozen=True)
class CaseInput:
    name: str
    path: Path


def case_name(path: Path) -> str:
    name = path.name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.endswith("_0000"):  # nnU-Net channel suffix
        name = name[:-5]
    return name


def _is_dicom_folder(path: Path) -> bool:
    return any(sniff_dicom_file(p) for p in path.iterdir() if p.is_file())


def expand_inputs(inputs: Iterable[str | Path]) -> list[CaseInput]:
    """Files, DICOM series folders, folders of images, and glob patterns -> unique cases."""
    cases: list[CaseInput] = []
    for item in inputs:
        text = str(item)
        matches = sorted(glob.glob(text)) if any(ch in text for ch in "*?[") else [text]
        if not matches:
            raise InputError(text, "no file matches this pattern")
        for m in matches:
            p = Path(m)
            if not p.exists():
                raise InputError(p, "file not found")
            if p.is_dir() and not _is_dicom_folder(p):
                files = sorted(f for f in p.iterdir() if f.is_file()
                               and f.name.lower().endswith(IMAGE_SUFFIXES))
                subdirs = sorted(d for d in p.iterdir() if d.is_dir() and _is_dicom_folder(d))
                if not files and not subdirs:
                    raise InputError(p, "folder holds no images or DICOM series")
                cases += [CaseInput(case_name(f), f) for f in files]
                cases += [CaseInput(d.name, d) for d in subdirs]
            else:
                cases.append(CaseInput(case_name(p), p))
    seen: dict[str, Path] = {}
    for c in cases:
        if c.name in seen and seen[c.name] != c.path:
            raise InputError(c.path, f"case name {c.name!r} also used by {seen[c.name]}")
        seen[c.name] = c.path
    return list({c.name: c for c in cases}.values())


def remove_stale_parts(out_dir: Path, names: Iterable[str], before: float) -> list[Path]:
    """Delete the atomic-write temporaries of ``names`` (files in ``out_dir``) last modified
    before ``before`` (a time stamp): leftovers of a killed run, never a live writer's."""
    removed = []
    for name in names:
        for part in out_dir.glob(f".{glob.escape(name)}.*.part*"):
            try:
                if part.stat().st_mtime < before:
                    part.unlink()
                    removed.append(part)
            except FileNotFoundError:  # its writer finished or another run removed it
                continue
    return removed


def recorded_qc(volumes_json: Path) -> dict[str, Any]:
    """``qc`` and ``qc_reasons`` of a finished case, from its volumes JSON (empty when that
    file holds none or cannot be read)."""
    try:
        qc = json.loads(volumes_json.read_text()).get("qc")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(qc, dict) or qc.get("status") not in ("ok", "warn"):
        return {}
    reasons, checked = qc.get("reasons"), qc.get("checked")
    return {"qc": qc["status"],
            "qc_reasons": [str(r) for r in reasons] if isinstance(reasons, list) else [],
            "qc_checked": [str(c) for c in checked] if isinstance(checked, list) else []}


def segment_cases(cases: list[CaseInput], out_dir: str | Path, segmenter, *,
                  overwrite: bool = False, progress: bool = True, dicom_seg: bool = False,
                  keep_patient_data: bool = False) -> list[dict[str, Any]]:
    """Segment every case; return one summary row per case (status ok/skipped/error)."""
    out_dir = Path(out_dir)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    mine = cases[rank::world]
    started = time.time()
    rows: list[dict[str, Any]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), desc="segment", unit="case", file=sys.stderr,
                   dynamic_ncols=True, position=rank)
    for case in mine:
        paths = output_paths(out_dir, case.name)
        if out_dir.is_dir():
            remove_stale_parts(out_dir, [p.name for p in paths.values()], started)
        row: dict[str, Any] = {"case": case.name, "input": str(case.path)}
        if paths["mask"].exists() and not overwrite:
            row.update(status="skipped", message="output exists (use --overwrite)")
            row.update(recorded_qc(paths["volumes_json"]))
        else:
            t0 = time.time()
            try:
                image = read_image(case.path)
                result = segmenter(image, where=str(case.path))
                written = write_segmentation(result, image, out_dir, case.name,
                                             model=segmenter.name)
                if dicom_seg and (case.path.is_dir() or case.path.suffix.lower() == ".zip"):
                    from medseg.io.dicom_seg import write_dicom_seg

                    written["dicom_seg"] = write_dicom_seg(
                        result, case.path, paths["dicom_seg"],
                        keep_patient_data=keep_patient_data,
                        segment_codes=getattr(segmenter, "segment_codes", None))
                row.update(status="ok", seconds=round(time.time() - t0, 2),
                           mask=str(written["mask"]),
                           volumes_ml={r["name"]: r["volume_ml"] for r in result.volumes()})
                if result.qc is not None:
                    row.update(qc=result.qc.status, qc_reasons=result.qc.reasons,
                               qc_checked=list(result.qc.checked))
            except MedsegError as exc:
                row.update(status="error", message=str(exc))
            except Exception as exc:  # one broken case must not stop the batch
                row.update(status="error", message=f"{case.path}: {type(exc).__name__}: {exc}")
        rows.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(case=case.name, status=row["status"])
    if bar is not None:
        bar.close()
    summary_name = "summary.json" if world == 1 else f"summary_rank{rank}.json"
    if out_dir.is_dir():
        remove_stale_parts(out_dir, [summary_name], started)
    write_text_atomic(out_dir / summary_name, json.dumps(rows, indent=2) + "\n")
    return rows
