"""Folders that change as a whole: built beside their target and swapped in at once.

A build folder is named ``.<target>.<host>-<pid>.<random>.part`` (its writer's host and
process id, as :mod:`medseg.io.atomic` names temporaries) and holds a marker file until every
file is written. The swap is one ``renameat2(RENAME_EXCHANGE)`` on Linux, so the target is at
every moment the old complete folder or the new one; elsewhere two renames leave a moment
without the target, and the folders of a writer killed then (the new one, and the old one
renamed ``....part-old``) stay beside it. Build folders of writers that no longer run are
found by :func:`interrupted_builds` and removed by :func:`sweep_interrupted`; a live writer's
is never touched. Used by report folders (:mod:`medseg.evaluation.report.folder`) and model bundles
(:func:`medseg.models.medseg_bundle.bundle.save_bundle`).

A target given as a symbolic link is the folder it points to (:func:`real_target`): the build
is made beside that folder and swapped with it, and the link still points to the new one.
(Swapping with the link itself left the link behind as a ``.part`` entry that ``shutil.rmtree``
refuses to remove.) Leftovers are removed whatever they are (folder, file or link), and a
sweep reports only what is really gone.
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
from collections.abc import Iterator
from pathlib import Path

from medseg.io.atomic import _owner, part_writer_gone
from medseg.io.debughooks import pause_point

#: swap with one ``renameat2(RENAME_EXCHANGE)`` where the system has it
USE_EXCHANGE = sys.platform.startswith("linux")


def _build_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_-]+-\d+\.[^.]+\.part(-old)?")


def real_target(target: str | Path) -> Path:
    """``target`` as an absolute path; a symbolic link as the path it points to."""
    target = Path(target).absolute()
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def interrupted_builds(target: str | Path) -> list[Path]:
    """Build folders beside ``target`` (beside the folder a link points to, and beside the
    link) whose writer is gone (a killed or crashed run)."""
    found: set[Path] = set()
    for where in {Path(target).absolute(), real_target(target)}:
        if not where.parent.is_dir():
            continue
        pattern = _build_pattern(where)
        found.update(p for p in where.parent.iterdir()
                     if pattern.fullmatch(p.name) and (p.is_dir() or p.is_symlink())
                     and part_writer_gone(p))
    return sorted(found)


def remove_entry(path: Path) -> bool:
    """Remove a folder, file or link (a link, not what it points to); True when it is gone."""
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def sweep_interrupted(target: str | Path) -> list[Path]:
    """Remove the build folders of interrupted runs beside ``target``; return those that are
    gone (one that could not be removed is not reported as removed)."""
    return [path for path in interrupted_builds(target) if remove_entry(path)]


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


def swap_in(build: Path, target: Path, *, step: str = "report") -> None:
    """Replace ``target`` (if any) by ``build`` as a whole."""
    if not target.exists():
        os.rename(build, target)
        return
    if _exchange(build, target):  # build now holds the old report
        pause_point(f"{step}-after-exchange")
        remove_entry(build)
        return
    old = build.with_name(build.name + "-old")
    os.rename(target, old)
    pause_point(f"{step}-between-renames")
    os.rename(build, target)
    remove_entry(old)


@contextlib.contextmanager
def atomic_folder(target: str | Path, *, marker: str, marker_text: str,
                  step: str) -> Iterator[Path]:
    """Yield a build folder beside ``target`` holding ``marker`` until it is complete; on
    normal exit it replaces ``target`` as a whole, on an exception it is removed and
    ``target`` is untouched."""
    target = real_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_interrupted(target)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_owner()}.", suffix=".part",
                                  dir=target.parent))
    try:
        os.chmod(build, 0o777 & ~_umask())  # mkdtemp makes 0700; a report has the usual mode
        (build / marker).write_text(marker_text.format(pid=os.getpid()), encoding="utf-8")
        yield build
        pause_point(f"{step}-before-swap")
        (build / marker).unlink()
        swap_in(build, target, step=step)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise


