"""Which of a task's weight folders are on disk, complete or not, and how big they are.

A dataset folder is *present* when its trainer folder holds ``dataset.json``, ``plans.json``
and ``fold_0/checkpoint_final.pth`` (what TotalSegmentator runs), *partial* when the folder
exists without all of them (an interrupted extraction or copy), and *missing* otherwise.
Nothing is opened or hashed here: this is cheap enough for ``medseg models``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medseg.models.totalseg.tasks import Task, WeightsRelease, get_task, required_releases

PRESENT, MISSING, PARTIAL = "present", "missing", "partial"
#: files TotalSegmentator needs inside the trainer folder
NEEDED = ("dataset.json", "plans.json", "fold_0/checkpoint_final.pth")


@dataclass(frozen=True)
class FolderStatus:
    release: WeightsRelease
    path: Path
    #: ``present``, ``missing`` or ``partial``
    state: str
    size_bytes: int
    #: for a partial folder, the first file it lacks (relative to the dataset folder)
    lacking: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"dataset_id": self.release.dataset_id, "folder": self.release.folder,
                "tag": self.release.tag, "path": str(self.path), "state": self.state,
                "size_bytes": self.size_bytes, "lacking": self.lacking or None}


def folder_size(path: Path) -> int:
    """Bytes of every file under ``path`` (links not followed; 0 when absent)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def folder_status(release: WeightsRelease, root: Path | None = None) -> FolderStatus:
    path = release.path(root)
    if not path.is_dir():
        return FolderStatus(release, path, MISSING, 0)
    size = folder_size(path)
    for name in NEEDED:
        if not (path / release.trainer_folder / name).is_file():
            return FolderStatus(release, path, PARTIAL, size,
                                f"{release.trainer_folder}/{name}")
    return FolderStatus(release, path, PRESENT, size)


def task_status(task: Task | str, root: Path | None = None) -> tuple[FolderStatus, ...]:
    """Each dataset folder ``task`` can need (parts first, then locators), with its state and
    size on disk."""
    name = task.name if isinstance(task, Task) else task
    return tuple(folder_status(r, root) for r in required_releases(name))


def task_state(task: Task | str, root: Path | None = None) -> str:
    """``present`` when every part is, ``missing`` when none is there at all, else
    ``partial``. Locators count too: ``--roi-subset`` and crops need them."""
    states = {s.state for s in task_status(task, root)}
    if states == {PRESENT}:
        return PRESENT
    if states == {MISSING}:
        return MISSING
    return PARTIAL


def summary(task: Task | str, root: Path | None = None) -> dict[str, object]:
    """What ``medseg models`` and ``medseg info`` show for a task."""
    t = get_task(task) if isinstance(task, str) else task
    folders = task_status(t, root)
    return {
        "name": t.model_name, "task": t.name, "modality": t.modality,
        "classes": len(t.classes), "licence": t.licence, "licence_url": t.licence_url,
        "state": task_state(t, root),
        "size_bytes": sum(f.size_bytes for f in folders),
        "folders": [f.to_dict() for f in folders],
    }
