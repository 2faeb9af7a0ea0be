"""Error types. Every error a user can cause is a :class:`MedsegError` with a one-line message."""

from __future__ import annotations

import errno
from pathlib import Path


class MedsegError(Exception):
    """Base class for errors that are reported to the user as one line, without a traceback."""


class InputError(MedsegError):
    """A file or folder cannot be used: missing, corrupt, wrong format, unsafe.

    The message always starts with the offending path.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class GeometryError(MedsegError):
    """Shapes or world geometry do not fit together."""


class PluginError(MedsegError):
    """A plugin is broken, a name clashes, or a requested component is not registered."""


class MultipleSeriesError(InputError):
    """A DICOM folder holds more than one series; ``series`` lists them."""

    def __init__(self, path: str | Path, series: list[dict]) -> None:
        self.series = series
        listing = "; ".join(
            f"{s['uid']} ({s['description'] or 'no description'}, {s['count']} slices)"
            for s in series
        )
        super().__init__(
            path,
            f"holds {len(series)} DICOM series, pick one with --series UID: {listing}",
        )


_OS_PROBLEMS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOTDIR: "a file is in the way (a folder was expected)",
    errno.EEXIST: "already exists and is not a folder",
    errno.ENAMETOOLONG: "name too long",
    errno.EFBIG: "file too large for the file system",
}


def os_problem(exc: OSError) -> str:
    """A short, path-free description of an operating-system error."""
    if exc.errno in _OS_PROBLEMS:
        return _OS_PROBLEMS[exc.errno]
    return (exc.strerror or type(exc).__name__).lower()


def input_error_from_os(path: str | Path, exc: OSError) -> InputError:
    """``InputError(path, problem)`` for an OSError met while reading or writing ``path``;
    the path the OS names, when it is more precise, is kept."""
    named = exc.filename if isinstance(exc.filename, str) and exc.filename else None
    return InputError(named or path, os_problem(exc))


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``str(exc)``, stripped and cut to ``limit`` characters ('' if none)."""
    lines = str(exc).strip().splitlines()
    return lines[0].strip()[:limit] if lines else ""


def exception_summary(exc: BaseException, limit: int = 200) -> str:
    """``TypeName: first line`` of an exception, or the type name alone when it has no
    message: how a foreign library's failure is quoted in a one-line error."""
    text = first_line(exc, limit)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
