"""Atomic file output: write to a temporary sibling, then rename over the target.

A temporary is named ``.<target>.<host>-<pid>.<random>.part<ext>``: it carries its writer's
host and process id, so cleanup (:func:`part_writer_gone`) removes only the temporaries of a
writer that no longer runs, never a live (even paused) writer's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medseg.errors import InputError, os_problem


def _suffixes(path: Path) -> str:
    name = path.name
    for double in (".nii.gz", ".tar.gz"):
        if name.lower().endswith(double):
            return name[-len(double) :]
    return path.suffix


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64] or "host"


def _owner() -> str:
    return f"{_host()}-{os.getpid()}"


_OWNER = re.compile(r"\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.part")


def part_writer_gone(part: Path) -> bool:
    """Whether the process that writes temporary ``part`` has ended: True only for a part of
    this host whose process id no longer runs (or a part with no owner, from before owners
    were recorded). Parts of other hosts (a shared folder) are never judged gone."""
    matches = list(_OWNER.finditer(part.name))
    if not matches:
        return True
    owner = matches[-1]
    if owner.group("host") != _host():
        return False
    pid = int(owner.group("pid"))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` with the same extension.

    On normal exit the temporary file replaces ``target`` in one ``os.replace``; on any
    exception it is removed, so ``target`` is either complete or untouched. An OS error while
    writing (full disk, read-only or missing permission, a folder in the way) becomes a
    one-line :class:`InputError` naming ``target``.
    """
    target = Path(target)
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.{_owner()}.", suffix=".part" + _suffixes(target),
            dir=target.parent,
        )
    except OSError as exc:  # name a parent folder in the way, else the target
        named = Path(exc.filename) if isinstance(exc.filename, str) else None
        where = named if named is not None and named in target.parents else target
        raise InputError(where, os_problem(exc)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; use the usual file mode
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as exc:  # full disk, quota, a folder in the way...: the caller's one line
        raise InputError(target, os_problem(exc)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def write_text_atomic(target: str | Path, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
