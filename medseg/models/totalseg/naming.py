"""How a TotalSegmentator task is named as a model, without loading anything heavy.

``-m totalseg:total_fast`` resolves (see :mod:`medseg.models.catalog`) to the path
``<weights dir>/totalseg:total_fast``, never a folder on disk: the ``totalseg`` format
recognises it by its name, and the task's dataset folders are looked up in that weights
directory and used in place.
"""

from __future__ import annotations

from pathlib import Path

from medseg.models.totalseg.tasks import is_task_name, weights_dir

FORMAT = "totalseg"
#: format options (``--roi-subset`` on ``medseg segment``)
OPTIONS = ("roi_subset",)


def sniff(path: Path) -> bool:
    """A task's name as a path (``<anything>/totalseg:<task>``) that is not a real file."""
    path = Path(path)
    return is_task_name(path.name) and not path.exists()


def root_of(path: Path) -> Path:
    """The weights directory a task path points into."""
    parent = Path(path).parent
    return parent if str(parent) not in ("", ".") else weights_dir()
