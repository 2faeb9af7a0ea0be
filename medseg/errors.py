"""Error types. Every error a user can cause is a :class:`MedsegError` with a one-line message."""

from __future__ import annotations

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
