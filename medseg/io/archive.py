"""Safe extraction of uploaded zip archives (DICOM series, cohorts of masks).

Every member is checked before anything is written: absolute paths, ``..`` components,
symbolic links and drive letters are refused; member count and the uncompressed size are
bounded (``$MEDSEG_MAX_ZIP_MEMBERS``, ``$MEDSEG_MAX_UNZIPPED_BYTES``: :mod:`medseg.io.limits`), and
the size is counted while decompressing (headers can lie).
"""

from __future__ import annotations

import errno
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from medseg.errors import InputError, input_error_from_os
from medseg.io.guards import DECODE_ERRORS, reason
from medseg.io.limits import max_unzipped_bytes, max_zip_members

_CHUNK = 1 << 20
#: write errors that say the destination is full or not writable, not that the zip is bad
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES})
_ZIP_ERRORS: tuple[type[BaseException], ...] = (zipfile.BadZipFile, zipfile.LargeZipFile,
                                                *DECODE_ERRORS)


def _check_member(archive: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    pure = PurePosixPath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InputError(archive, f"zip member {info.filename!r} has an absolute path; refused")
    if ".." in pure.parts:
        raise InputError(archive, f"zip member {info.filename!r} escapes the archive (..); refused")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise InputError(archive, f"zip member {info.filename!r} is a symbolic link; refused")
    return pure


def safe_extract_zip(
    archive: str | Path,
    dest: str | Path,
    *,
    max_members: int | None = None,
    max_bytes: int | None = None,
) -> list[Path]:
    """Extract ``archive`` into ``dest`` after validating every member; return file paths.

    Raises :class:`InputError` naming the archive for an unsafe or oversized archive; in that
    case nothing that was already extracted is left in ``dest``.
    """
    archive = Path(archive)
    dest = Path(dest)
    max_members = max_zip_members() if max_members is None else max_members
    max_bytes = max_unzipped_bytes() if max_bytes is None else max_bytes
    try:
        zf = zipfile.ZipFile(archive)
    except FileNotFoundError:
        raise InputError(archive, "file not found") from None
    except _ZIP_ERRORS as exc:
        raise InputError(archive, f"not a readable zip archive ({reason(exc)})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise InputError(
                archive, f"zip has {len(infos)} members, more than the limit {max_members}"
            )
        members = [(info, _check_member(archive, info)) for info in infos]
        declared = sum(info.file_size for info, _ in members)
        if declared > max_bytes:
            raise InputError(
                archive, f"zip expands to {declared} bytes, more than the limit {max_bytes}"
            )
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        total = 0
        try:
            for info, pure in members:
                if info.is_dir():
                    continue
                out = dest.joinpath(*pure.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:
                    written.append(out)
                    while chunk := src.read(_CHUNK):
                        total += len(chunk)
                        if total > max_bytes:
                            raise InputError(
                                archive, f"zip expands past the limit of {max_bytes} bytes"
                            )
                        dst.write(chunk)
        except InputError:
            _cleanup(dest, written)
            raise
        except OSError as exc:
            if exc.errno in _DISK_ERRNOS:  # the destination, not the archive, is the problem
                _cleanup(dest, written)
                raise input_error_from_os(dest, exc) from None
            _cleanup(dest, written)
            raise InputError(archive, f"corrupt zip archive ({reason(exc)})") from None
        except _ZIP_ERRORS as exc:
            # bad CRC or deflate data, encrypted members (RuntimeError), unsupported
            # compression (NotImplementedError), a member clashing with a folder (OSError)
            _cleanup(dest, written)
            raise InputError(archive, f"corrupt zip archive ({reason(exc)})") from None
    return written


def _cleanup(dest: Path, written: list[Path]) -> None:
    for p in written:
        p.unlink(missing_ok=True)
    for sub in sorted({p.parent for p in written}, key=lambda p: -len(p.parts)):
        if sub != dest and sub.is_dir() and not any(sub.iterdir()):
            shutil.rmtree(sub, ignore_errors=True)
