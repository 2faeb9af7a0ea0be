"""Report folders that change as a whole.

``medseg evaluate`` and ``medseg compare`` write their report into a build folder beside the
target, named ``.<target>.<host>-<pid>.<random>.part`` (its writer's host and process id,
as :mod:`medseg.io.atomic` names temporaries), and swap it in only once every file is
written. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``: the target is at every
moment the old complete report or the new complete one, never a mix (``per_case.csv`` of
one cohort beside ``summary.*`` of another). Elsewhere two renames leave a moment without the
target; the folders of a writer killed then (the new report, and the old one renamed
``....part-old``) stay beside it.

An interrupted run is detectable: a build folder holds :data:`INCOMPLETE` from its creation
until it is complete, and :func:`interrupted_builds` lists the build folders of writers that
no longer run; :func:`sweep_interrupted` removes them (``medseg evaluate``/``compare`` do so
first and say what they removed). A live writer's build folder is never touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from medseg.errors import InputError
from medseg.io.atomic_folder import (  # noqa: F401  (re-exported for callers and tests)
    USE_EXCHANGE,
    atomic_folder,
    interrupted_builds,
    sweep_interrupted,
)

#: file in a build folder until every report file is written
INCOMPLETE = "INCOMPLETE.txt"
#: a folder holding one of these is a medseg report and may be replaced as a whole
REPORT_FILES = ("summary.json", "comparison.json")
def check_target(target: str | Path) -> Path:
    """``target`` as an absolute path, or an :class:`InputError` when it cannot be replaced:
    a file, or a folder that holds files but no medseg report (it would be lost)."""
    target = Path(target).absolute()
    if target.exists() and not target.is_dir():
        raise InputError(target, "is a file, not a report folder")
    if target.is_dir() and any(target.iterdir()) and \
            not any((target / name).is_file() for name in REPORT_FILES):
        raise InputError(target, "holds files that are not a medseg report (no "
                                 f"{' or '.join(REPORT_FILES)}); give a new or empty folder")
    return target


@contextlib.contextmanager
def report_folder(target: str | Path) -> Iterator[Path]:
    """Yield a build folder beside ``target``; on normal exit it replaces ``target`` as a
    whole, on an exception it is removed and ``target`` is untouched."""
    with atomic_folder(check_target(target), marker=INCOMPLETE, step="report", marker_text=(
            "medseg is writing this report (process {pid}); if this file remains, the run was "
            "interrupted and the report is incomplete.\n")) as build:
        yield build


def relocate(files: Mapping[str, Path], build: Path, target: Path) -> dict[str, Path]:
    """The paths of ``files`` (written under ``build``) once ``build`` is ``target``."""
    out = {}
    for key, path in files.items():
        path = Path(path)
        try:
            out[key] = Path(target).absolute() / path.absolute().relative_to(build)
        except ValueError:
            out[key] = path
    return out
