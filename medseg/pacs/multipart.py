"""A ``multipart/related`` answer (WADO-RS) split into files as it streams in.

Each part's body goes straight to its own file, so memory stays at one chunk whatever size an
instance has; a part is refused once it passes ``part_limit`` bytes, a part's headers past
:data:`MAX_PART_HEADERS`, and an answer that ends before its closing boundary is an error
(a cut connection is not a complete series). The framing is RFC 2046: parts are separated by
``CRLF--boundary``, the last one is followed by ``--boundary--``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: bytes of headers one part may carry, and of text before the first boundary
MAX_PART_HEADERS = 16 * 1024
MAX_PREAMBLE = 64 * 1024


class MultipartError(ValueError):
    """The answer is not well-formed multipart."""


class PartTooLargeError(Exception):
    """A part passed its size limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"a part larger than {limit} bytes")


def content_type_params(value: str) -> tuple[str, dict[str, str]]:
    """``("multipart/related", {"type": ..., "boundary": ...})`` of a Content-Type value."""
    media, *rest = (item.strip() for item in value.split(";"))
    params = {}
    for item in rest:
        key, _, val = item.partition("=")
        params[key.strip().lower()] = val.strip().strip('"')
    return media.lower(), params


class MultipartFiles:
    """Feed it the body's chunks; each part is written to ``path_for(index)``.

    ``on_part(path)`` is called once a part is complete (to check it). :meth:`finish` raises
    unless the closing boundary has arrived."""

    def __init__(self, boundary: str, path_for: Callable[[int], Path], *, part_limit: int,
                 on_part: Callable[[Path], None] | None = None) -> None:
        if not boundary or len(boundary) > 200:
            raise MultipartError("multipart answer without a usable boundary")
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        self._path_for = path_for
        self._limit = part_limit
        self._on_part = on_part
        self._buffer = b"\r\n"  # the first boundary may open the body without a CRLF
        self._state = "preamble"
        self._file: BinaryIO | None = None
        self._written = 0
        self.paths: list[Path] = []

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while self._step():
            pass

    def _step(self) -> bool:
        """Consume what the buffer allows; True when another step may consume more."""
        buf = self._buffer
        if self._state == "preamble":
            at = buf.find(self._delimiter)
            if at < 0:
                if len(buf) > MAX_PREAMBLE:
                    raise MultipartError("no multipart boundary where one was expected")
                return False
            self._buffer = buf[at + len(self._delimiter):]
            self._state = "after-delimiter"
            return True
        if self._state == "after-delimiter":
            if len(buf) < 2:
                return False
            if buf.startswith(b"--"):
                self._state = "done"
                self._buffer = b""
                return False
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > 256:
                    raise MultipartError("malformed multipart boundary line")
                return False
            if buf[:end].strip(b" \t"):
                raise MultipartError("malformed multipart boundary line")
            self._buffer = buf[end + 2:]
            self._state = "headers"
            return True
        if self._state == "headers":
            end = buf.find(b"\r\n\r\n")
            if buf.startswith(b"\r\n"):
                end = -2  # a part without headers
            if end == -1:
                if len(buf) > MAX_PART_HEADERS:
                    raise MultipartError(f"part headers longer than {MAX_PART_HEADERS} bytes")
                return False
            if end > MAX_PART_HEADERS:
                raise MultipartError(f"part headers longer than {MAX_PART_HEADERS} bytes")
            self._buffer = buf[end + 4:]
            self._open_part()
            self._state = "body"
            return True
        if self._state == "body":
            at = buf.find(self._delimiter)
            if at < 0:
                keep = len(self._delimiter) - 1  # a delimiter may straddle two chunks
                if len(buf) > keep:
                    self._write(buf[:-keep])
                    self._buffer = buf[-keep:]
                return False
            self._write(buf[:at])
            self._close_part()
            self._buffer = buf[at + len(self._delimiter):]
            self._state = "after-delimiter"
            return True
        if buf.strip():  # "done": only the epilogue may follow, and is ignored
            self._buffer = b""
        return False

    def _open_part(self) -> None:
        path = self._path_for(len(self.paths))
        self.paths.append(path)
        self._file = open(path, "wb")  # noqa: SIM115 (closed in _close_part or close)
        self._written = 0

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self._written += len(data)
        if self._written > self._limit:
            raise PartTooLargeError(self._limit)
        assert self._file is not None
        self._file.write(data)

    def _close_part(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if self._on_part is not None:
                self._on_part(self.paths[-1])

    def finish(self) -> None:
        """The answer has ended: it must have ended at its closing boundary."""
        if self._state != "done":
            self.close()
            raise MultipartError("the answer ended before its closing multipart boundary")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class SingleFile:
    """The same interface for an answer that is one bare body (some servers send a single
    ``application/dicom`` instance unframed): the whole body is the one part."""

    def __init__(self, path_for: Callable[[int], Path], *, part_limit: int,
                 on_part: Callable[[Path], None] | None = None) -> None:
        self._limit = part_limit
        self._on_part = on_part
        self.paths = [path_for(0)]
        self._file: BinaryIO | None = open(self.paths[0], "wb")  # noqa: SIM115
        self._written = 0

    def feed(self, chunk: bytes) -> None:
        self._written += len(chunk)
        if self._written > self._limit:
            raise PartTooLargeError(self._limit)
        assert self._file is not None
        self._file.write(chunk)

    def finish(self) -> None:
        self.close()
        if self._on_part is not None:
            self._on_part(self.paths[0])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
