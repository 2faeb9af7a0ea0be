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
import ctypes
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from medseg.debughooks import pause_point
from medseg.errors import InputError
from medseg.io.atomic import _owner, part_writer_gone

#: file in a build folder until every report file is written
INCOMPLETE = "INCOMPLETE.txt"
#: a folder holding one of these is a medseg report and may be replaced as a whole
REPORT_FILES = ("summary.json", "comparison.json")
#: swap with one ``renameat2(RENAME_EXCHANGE)`` where the system has it
USE_EXCHANGE = sys.platform.startswith("linux")


def _build_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_-]+-\d+\.[^.]+\.part(-old)?")


def interrupted_builds(target: str | Path) -> list[Path]:
    """Build folders beside ``target`` whose writer is gone (a killed or crashed run)."""
    target = Path(target).absolute()
    if not target.parent.is_dir():
        return []
    pattern = _build_pattern(target)
    return sorted(p for p in target.parent.iterdir()
                  if pattern.fullmatch(p.name) and p.is_dir() and part_writer_gone(p))


def sweep_interrupted(target: str | Path) -> list[Path]:
    """Remove the build folders of interrupted runs beside ``target``; return them."""
    removed = interrupted_builds(target)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system or file system cannot."""
    if not USE_EXCHANGE:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(build: Path, target: Path) -> None:
    if not target.exists():
        os.rename(build, target)
        return
    if _exchange(build, target):  # build now holds the old report
        pause_point("report-after-exchange")
        shutil.rmtree(build, ignore_errors=True)
        return
    old = build.with_name(build.name + "-old")
    os.rename(target, old)
    pause_point("report-between-renames")
    os.rename(build, target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def report_folder(target: str | Path) -> Iterator[Path]:
    """Yield a build folder beside ``target``; on normal exit it replaces ``target`` as a
    whole, on an exception it is removed and ``target`` is untouched."""
    target = check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_interrupted(target)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_owner()}.", suffix=".part",
                                  dir=target.parent))
    try:
        os.chmod(build, 0o777 & ~_umask())  # mkdtemp makes 0700; a report has the usual mode
        (build / INCOMPLETE).write_text(
            f"medseg is writing this report (process {os.getpid()}); if this file remains, "
            "the run was interrupted and the report is incomplete.\n", encoding="utf-8")
        yield build
        pause_point("report-before-swap")
        (build / INCOMPLETE).unlink()
        _swap_in(build, target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise


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
