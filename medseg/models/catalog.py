"""Where models are found by name: the bundled models, ``MEDSEG_MODELS_DIR`` and
TotalSegmentator's weights already on disk. Nothing is ever downloaded.

* ``MEDSEG_MODELS_DIR``: one or more folders (``os.pathsep``-separated); each sub-folder that a
  registered model format recognises is a model named after the folder. Default:
  ``~/.medseg/models`` when it exists, then the bundled ``sample_data/models``.
* TotalSegmentator: its tasks by name (``totalseg:total_fast``, ``totalseg:total``...; see
  :mod:`medseg.models.totalseg.tasks`), whether their weights are there or not; and each
  ``DatasetNNN_<name>`` folder in its weights directory (``$TOTALSEG_WEIGHTS_PATH``, else
  ``$TOTALSEG_HOME_DIR/nnunet/results``, else ``~/.totalsegmentator/nnunet/results``) as the
  single nnU-Net model ``totalseg:<name>`` (for example
  ``totalseg:TotalSegmentator_part1_organs_1559subj``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from medseg.models.totalseg.tasks import TASKS, is_task_name, weights_dir
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
    """TotalSegmentator's weights directory (:func:`medseg.models.totalseg.tasks.weights_dir`)."""
    return weights_dir()


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
    for task in TASKS.values():  # by name, present or not (their state is in describe)
        entry = _task_entry(task.model_name, registry)
        if entry is not None:
            entries.setdefault(entry.name, entry)
    return list(entries.values())


def _task_entry(name: str, registry: Registry) -> CatalogEntry | None:
    """A TotalSegmentator task: its path is ``<weights dir>/totalseg:<task>``, never a folder
    on disk, recognised by the ``totalseg`` format (see :mod:`medseg.models.totalseg.model`)."""
    path = totalsegmentator_dir() / name
    fmt = sniff_format(path, registry)
    return CatalogEntry(name, path, fmt, "TotalSegmentator") if fmt else None


def find_model(name: str, registry: Registry) -> CatalogEntry | None:
    """The model called ``name``, with the precedence of :func:`list_models`, looking only at
    the folders that name can be (not sniffing the whole catalogue)."""
    if name and Path(name).name == name:  # a bare folder name, never a path
        for folder in models_dirs():
            child = folder / name
            fmt = sniff_format(child, registry) if child.is_dir() else None
            if fmt:
                return CatalogEntry(name, child, fmt, _origin(folder))
    if is_task_name(name):
        return _task_entry(name, registry)
    if is_task_name(Path(name).name) and not Path(name).exists():  # a task in a given folder
        fmt = sniff_format(Path(name), registry)
        return CatalogEntry(Path(name).name, Path(name), fmt, "TotalSegmentator") if fmt else None
    if name.startswith(TOTALSEG_PREFIX):
        task = name[len(TOTALSEG_PREFIX):]
        for child in _safe_children(totalsegmentator_dir()):
            match = _DATASET.match(child.name)
            fmt = sniff_format(child, registry) if match and match.group(1) == task else None
            if fmt:
                return CatalogEntry(name, child, fmt, "TotalSegmentator")
    return None
