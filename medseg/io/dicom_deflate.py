"""Deflated DICOM datasets are inflated only when what they inflate to fits the limits.

A file in *Deflated Explicit VR Little Endian* (1.2.840.10008.1.2.1.99) holds its whole
dataset DEFLATE-compressed after the file meta; pydicom inflates it in one call before any
element is read, so an 829 kB file of zeros in a private element costs 800 MB at once. Before
pydicom sees such a file, :func:`check_deflated` inflates it in small chunks that are counted
and dropped, and refuses it, with one line naming the file, as soon as the count passes
:func:`inflate_limit` (the smaller of ``$MEDSEG_MAX_MEMORY_BYTES`` and
``$MEDSEG_MAX_UNZIPPED_BYTES``). Memory stays at one chunk whatever the file declares.

Pixel data in the other compressed transfer syntaxes (JPEG, JPEG 2000, RLE) is decoded into
an array of the size the header declares, which :func:`medseg.io.guards.check_declared_size`
checks against the same memory limit before decoding.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import BinaryIO

from pydicom.filereader import read_preamble
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medseg.errors import InputError
from medseg.io.limits import (
    MAX_MEMORY_BYTES_ENV,
    MAX_UNZIPPED_BYTES_ENV,
    max_memory_bytes,
    max_unzipped_bytes,
)

#: compressed bytes read, and inflated bytes produced, per step
_CHUNK = 1 << 16
_OUT_CHUNK = 1 << 20


def inflate_limit() -> int:
    """The most bytes a deflated dataset may inflate to."""
    return min(max_memory_bytes(), max_unzipped_bytes())


def _file_meta(fh: BinaryIO):
    # pydicom's own reader of the file meta group (it leaves ``fh`` at the dataset's start);
    # private in pydicom 3, so looked up where it is
    from pydicom import filereader

    return filereader._read_file_meta_info(fh)


def transfer_syntax(fh: BinaryIO) -> str | None:
    """The TransferSyntaxUID of the file meta (None without a DICM preamble or meta); ``fh``
    is left at the first byte after the file meta."""
    fh.seek(0)
    if read_preamble(fh, True) is None:  # force: None instead of an error
        return None
    meta = _file_meta(fh)
    value = meta.get("TransferSyntaxUID")
    return None if value is None else str(value)


def inflated_size(fh: BinaryIO, limit: int) -> int:
    """Bytes the raw DEFLATE stream from ``fh``'s position inflates to, counted chunk by chunk
    (nothing kept); stops as soon as the count passes ``limit`` and returns that count."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while not inflater.eof:
        data = fh.read(_CHUNK)
        if not data:
            break
        while data and not inflater.eof:
            total += len(inflater.decompress(data, _OUT_CHUNK))
            if total > limit:
                return total
            data = inflater.unconsumed_tail
    return total


def check_deflated(fh: BinaryIO, shown: str | Path) -> None:
    """Refuse a Deflated Explicit VR Little Endian file whose dataset inflates past
    :func:`inflate_limit`; any other file passes untouched. ``fh`` is left at position 0."""
    try:
        syntax = transfer_syntax(fh)
        if syntax != DeflatedExplicitVRLittleEndian:
            return
        limit = inflate_limit()
        try:
            total = inflated_size(fh, limit)
        except zlib.error as exc:
            raise InputError(shown, f"corrupt deflated DICOM dataset (zlib: {exc})") from None
        if total > limit:
            raise InputError(
                shown, f"deflated DICOM dataset inflates to more than {limit} bytes (the "
                       f"smaller of {MAX_MEMORY_BYTES_ENV} and {MAX_UNZIPPED_BYTES_ENV}); "
                       "refused before inflating it")
    finally:
        fh.seek(0)
