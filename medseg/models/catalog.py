"""Where models are found by name: the bundled models, ``MEDSEG_MODELS_DIR`` and
TotalSegmentator's weights already on disk. Nothing is ever downloaded.

* ``MEDSEG_MODELS_DIR``: one or more folders (``os.pathsep``-separated); each sub-folder that a
  registered model format recognises is a model named after the folder. Default:
  ``~/.medseg/models`` when it exists, then the bundled ``sample_data/models``.
* TotalSegmentator: ``$TOTALSEG_HOME_DIR/nnunet/results`` (default
  ``~/.totalsegmentator/nnunet/results``); each ``DatasetNNN_<name>`` is offered as
  ``totalseg:<name>`` (for example ``totalseg:TotalSegmentator_part1_organs_1559subj``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from medseg.registry import Registry

#: the bundled models (``--model brain_tissue``), in the source tree's ``sample_data/models``
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[2] / "sample_data" / "models"
MODELS_DIR_ENV = "MEDSEG_MODELS_DIR"
USER_MODELS_DIR = Path("~/.medseg/models")
TOTALSEG_PREFIX = "totalseg:"
_DATASET = re.compile(r"^Dataset\d{3}_(.+)$")


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    path: Path
    format: str
    origin: str  # "models dir", "bundled", "TotalSegmentator"


def models_dirs() -> list[Path]:
    env = os.environ.get(MODELS_DIR_ENV, "")
    if env.strip():
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    dirs = [USER_MODELS_DIR.expanduser()]
    return [d for d in dirs if d.is_dir()] + [DEFAULT_MODELS_DIR]


def totalsegmentator_dir() -> Path:
    home = os.environ.get("TOTALSEG_HOME_DIR")
    base = Path(home).expanduser() if home else Path("~/.totalsegmentator").expanduser()
    return base / "nnunet" / "results"


def sniff_format(path: Path, registry: Registry) -> str | None:
    """Name of the first (highest priority) format that recognises ``path``."""
    for spec in registry.model_formats_by_priority():
        try:
            if spec.sniff(path):
                return spec.name
        except Exception:  # a broken sniffer must not hide other formats
            continue
    return None


def _safe_children(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []


def _origin(folder: Path) -> str:
    return "bundled" if folder.resolve() == DEFAULT_MODELS_DIR.resolve() else "models dir"


def list_models(registry: Registry) -> list[CatalogEntry]:
    """Every model found by name, first folder wins on a name clash."""
    entries: dict[str, CatalogEntry] = {}
    for folder in models_dirs():
        origin = _origin(folder)
        for child in _safe_children(folder):
            fmt = sniff_format(child, registry)
            if fmt and child.name not in entries:
                entries[child.name] = CatalogEntry(child.name, child, fmt, origin)
    for child in _safe_children(totalsegmentator_dir()):
        match = _DATASET.match(child.name)
        fmt = sniff_format(child, registry) if match else None
        if match and fmt:
            name = TOTALSEG_PREFIX + match.group(1)
            entries.setdefault(name, CatalogEntry(name, child, fmt, "TotalSegmentator"))
    return list(entries.values())


def find_model(name: str, registry: Registry) -> CatalogEntry | None:
    """The model called ``name``, with the precedence of :func:`list_models`, looking only at
    the folders that name can be (not sniffing the whole catalogue)."""
    if name and Path(name).name == name:  # a bare folder name, never a path
        for folder in models_dirs():
            child = folder / name
            fmt = sniff_format(child, registry) if child.is_dir() else None
            if fmt:
                return CatalogEntry(name, child, fmt, _origin(folder))
    if name.startswith(TOTALSEG_PREFIX):
        task = name[len(TOTALSEG_PREFIX):]
        for child in _safe_children(totalsegmentator_dir()):
            match = _DATASET.match(child.name)
            fmt = sniff_format(child, registry) if match and match.group(1) == task else None
            if fmt:
                return CatalogEntry(name, child, fmt, "TotalSegmentator")
    return None
