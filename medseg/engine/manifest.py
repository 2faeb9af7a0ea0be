"""Per-case manifests: a case is done only when everything asked of it exists.

``CASE_manifest.json`` is written last, after every output of the case, with each output's
file name, size and SHA-256, the settings that shaped them, the model, the timing, the volumes
and the QC verdict. A rerun skips a case only when its manifest lists every output now
requested and those files are still there with their recorded sizes; otherwise it produces
what is missing (a SEG from the existing mask, say) or redoes the case. Skipped cases report
the results recorded in their manifest, so a rerun's summary keeps the first run's figures.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medseg.io.atomic import write_text_atomic
from medseg.io.checksum import sha256_file

MANIFEST_VERSION = 1
#: outputs every case has; others (probabilities, dicom_seg, instances...) when asked
BASE_OUTPUTS = ("mask", "volumes_json", "volumes_csv")


def manifest_path(out_dir: Path, case: str) -> Path:
    return Path(out_dir) / f"{case}_manifest.json"


def write_manifest(out_dir: Path, case: str, outputs: Mapping[str, Path],
                   result: Mapping[str, Any], settings: Mapping[str, Any]) -> Path:
    """Record ``outputs`` (kind -> file) with sizes and checksums, then the case's results."""
    files = {kind: {"file": Path(p).name, "bytes": Path(p).stat().st_size,
                    "sha256": sha256_file(p)}
             for kind, p in sorted(outputs.items())}
    doc = {"manifest_version": MANIFEST_VERSION, "case": case, "outputs": files,
           "settings": dict(settings), "result": dict(result)}
    path = manifest_path(out_dir, case)
    write_text_atomic(path, json.dumps(doc, indent=2, default=str) + "\n")
    return path


def read_manifest(out_dir: Path, case: str) -> dict[str, Any] | None:
    """The case's manifest, or None when absent or unreadable (the case is then not done)."""
    try:
        doc = json.loads(manifest_path(out_dir, case).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("outputs"), dict):
        return None
    return doc


def missing_outputs(doc: Mapping[str, Any] | None, out_dir: Path,
                    requested: Iterable[str]) -> set[str]:
    """Requested outputs the manifest does not list, or whose file is gone or changed size."""
    requested = set(requested)
    if doc is None:
        return requested
    missing = set()
    for kind in requested:
        entry = doc["outputs"].get(kind)
        path = Path(out_dir) / str(entry.get("file", "")) if isinstance(entry, dict) else None
        if path is None or not path.is_file() or path.stat().st_size != entry.get("bytes"):
            missing.add(kind)
    return missing
