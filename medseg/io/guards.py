"""Checks every reader makes on untrusted input before it allocates or trusts anything.

* :func:`check_declared_size`: the size an image header declares is refused when a dimension
  is not positive, when the image's working memory would exceed
  :func:`medseg.io.limits.max_memory_bytes`,
  or when the file is too small to hold what it declares (a tiny compressed "bomb").
* :func:`mapped`: a file opened for a decoder as a read-only memory map.
* :func:`reason`: the one-line text of a library exception for an :class:`InputError`.
* :data:`DECODE_ERRORS`: what third-party decoders raise on hostile bytes; readers turn these
  into :class:`InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import io
import math
import mmap
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from medseg.errors import InputError
from medseg.io.limits import MAX_COMPRESSION_RATIO, max_memory_bytes, working_bytes_per_voxel

#: exceptions decoders (nibabel, pydicom, Pillow, numpy) raise on malformed bytes
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, LookupError, AttributeError, EOFError, OSError, RuntimeError,
    ArithmeticError, struct.error, zlib.error, MemoryError, SyntaxError,
    StopIteration,  # pydicom's RLE handler runs out of fragments
)


@contextlib.contextmanager
def mapped(path: str | Path) -> Iterator[mmap.mmap | io.BytesIO]:
    """``path`` as a read-only file-like memory map, for decoders given hostile lengths.

    A corrupt length field (a 4 GB element in a 40 kB DICOM, a 235 MB PNG chunk) makes a
    decoder ask for that many bytes; a real file object allocates the whole request before
    finding the file short, a memory map returns only what is there. Where a file cannot be
    mapped (some file systems) an in-memory copy behaves the same way.
    """
    with open(path, "rb") as fh:
        if not fh.seek(0, 2):
            raise InputError(path, "file is empty")
        try:
            view: mmap.mmap | io.BytesIO = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            fh.seek(0)
            view = io.BytesIO(fh.read())
        with view:
            yield view


def reason(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line, shortened (library messages can span many lines)."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_declared_size(
    path: str | Path,
    shape: Sequence[int],
    itemsize: int,
    *,
    available: int | None = None,
    compressed: bool = False,
    what: str = "header",
) -> int:
    """Refuse an image whose ``what`` declares ``shape`` of ``itemsize``-byte elements when it
    is empty, negative, beyond the configured limit, or larger than ``available`` bytes can
    hold (``compressed``: allowing the largest DEFLATE ratio). Return the declared bytes."""
    dims = [int(d) for d in shape]
    if not dims or any(d <= 0 for d in dims):
        raise InputError(path, f"{what} declares an empty or negative image size {dims}")
    voxels = math.prod(dims)
    nbytes = voxels * max(int(itemsize), 1)
    needed = nbytes + int(voxels * working_bytes_per_voxel())
    limit = max_memory_bytes()
    if needed > limit:
        raise InputError(
            path,
            f"{what} declares {'x'.join(map(str, dims))} voxels ({nbytes} bytes decoded, "
            f"about {needed} bytes to process), more than the limit of {limit} bytes "
            f"(MEDSEG_MAX_MEMORY_BYTES)",
        )
    if available is not None:
        room = available * MAX_COMPRESSION_RATIO + (1 << 16) if compressed else available
        if nbytes > room:
            raise InputError(
                path,
                f"file is truncated or corrupt: {what} declares {nbytes} bytes of voxels but "
                f"the file holds only {available} bytes{' (compressed)' if compressed else ''}",
            )
    return nbytes
