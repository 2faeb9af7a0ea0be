"""One pull of a model at a time: an exclusive ``fcntl.flock`` on ``.<name>.lock`` beside it
(``msvcrt.locking`` on Windows).

A second pull of the same model waits for the first (saying so once, with the first one's
process id) and then finds the model installed. The lock dies with its process, so a killed
pull never leaves a lock behind; the file itself stays (removing lock files races).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from medseg.errors import InputError, input_error_from_os

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def _try_lock(fd: int) -> bool:
    """Take the lock without waiting; False when another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except (BlockingIOError, PermissionError):
        return False
    except OSError as exc:  # msvcrt: EACCES/EDEADLOCK when held
        if fcntl is None:
            return False
        raise exc
    return True


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def held(target: str | Path, *, say: Callable[[str], None] | None = None,
         timeout: float | None = None) -> Iterator[Path]:
    """Hold the pull lock of ``target`` for the block. Waits for another holder (at most
    ``timeout`` seconds when given, then a one-line :class:`InputError`)."""
    target = Path(target)
    path = lock_path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise input_error_from_os(path, exc) from None
    try:
        if not _try_lock(fd):
            holder = _holder(fd)
            if say:
                say(f"{target.name}: another pull is in progress (pid {holder}); waiting for it")
            _wait(fd, path, target, holder, timeout)
        _write_holder(fd)
        yield path
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    """The process id the holder wrote (the first byte may be locked on Windows: best effort)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 64).decode(errors="replace").strip() or "?"
    except OSError:
        return "?"


def _write_holder(fd: int) -> None:
    with contextlib.suppress(OSError):  # only informative
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())


def _wait(fd: int, path: Path, target: Path, holder: str, timeout: float | None) -> None:
    if timeout is None and fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    while not _try_lock(fd):
        if deadline is not None and time.monotonic() >= deadline:
            raise InputError(target, f"another pull (pid {holder}) is still in progress "
                                     f"after {timeout:g} s (lock {path.name})")
        time.sleep(0.1)
