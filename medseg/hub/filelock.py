"""One pull of a model at a time: an exclusive ``fcntl.flock`` on ``.<name>.lock`` beside it.

A second pull of the same model waits for the first (saying so once, with the first one's
process id) and then finds the model installed. The lock dies with its process, so a killed
pull never leaves a lock behind; the file itself stays (removing lock files races).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from medseg.errors import InputError, input_error_from_os


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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            if say:
                say(f"{target.name}: another pull is in progress (pid {holder}); waiting for it")
            _wait(fd, path, target, holder, timeout)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def _wait(fd: int, path: Path, target: Path, holder: str, timeout: float | None) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise InputError(target, f"another pull (pid {holder}) is still in progress "
                                         f"after {timeout:g} s (lock {path.name})") from None
            time.sleep(0.1)
