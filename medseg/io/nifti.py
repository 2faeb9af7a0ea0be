"""NIfTI-1/2 reading and writing with nibabel (``.nii``, ``.nii.gz``).

nibabel, not SimpleITK, reads NIfTI here: SimpleITK silently zero-fills a truncated
``.nii.gz`` while nibabel raises, and nibabel keeps the sform/qform affine exactly.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.io.guards import DECODE_ERRORS, check_declared_size, reason
from medseg.volume import LabelMap, Volume

_NIFTI1_MAGIC = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGIC = (b"n+2\x00", b"ni2\x00")
#: what nibabel raises on malformed headers and data
_NIFTI_ERRORS: tuple[type[BaseException], ...] = (
    nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
    nib.spatialimages.ImageDataError, *DECODE_ERRORS)


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        start = fh.read(2)
        fh.seek(0)
        if start == b"\x1f\x8b":
            try:
                with gzip.open(fh) as gz:
                    return gz.read(n)
            except (OSError, EOFError, zlib.error):
                return b""
        return fh.read(n)


def sniff_nifti(path: Path) -> bool:
    """True when ``path`` is a file whose (possibly gzipped) header carries a NIfTI magic."""
    if not path.is_file():
        return False
    head = _head(path, 540)
    if len(head) >= 348 and head[344:348] in _NIFTI1_MAGIC:
        return True
    return len(head) >= 540 and head[4:8] in _NIFTI2_MAGIC


def _check_header(path: Path, img: Any) -> None:
    """Refuse absurd or oversized headers before a voxel is allocated.

    An uncompressed file must hold ``vox_offset`` plus the declared voxels; a gzipped one
    cannot expand beyond the DEFLATE ratio (a tiny ``.nii.gz`` claiming gigabytes is refused).
    """
    header = img.header
    shape = tuple(int(d) for d in header.get_data_shape())
    itemsize = header.get_data_dtype().itemsize
    data_file = Path(img.file_map["image"].filename or path)  # a .hdr/.img pair: the .img
    if not data_file.is_file():
        raise InputError(path, f"data file {data_file.name} of the NIfTI pair is missing")
    size = data_file.stat().st_size
    gz = _is_gzip(data_file)
    offset = int(header.get_data_offset()) if not gz else 0
    if not gz and offset > size:
        raise InputError(path, f"file is truncated or corrupt: voxels start at byte {offset} "
                               f"but the file holds {size} bytes")
    check_declared_size(path, shape, itemsize, available=size - offset, compressed=gz,
                        what="NIfTI header")
    if gz:
        _check_gzip_stream(data_file)


def _check_gzip_stream(path: Path) -> None:
    """Decompress to the end (in chunks, output discarded) so the CRC and length trailer are
    checked: nibabel stops reading once it has the voxels and would accept a file whose end
    is cut off or whose deflate data decodes to wrong bytes."""
    with gzip.open(path, "rb") as gz:
        while gz.read(1 << 22):
            pass


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def read_nifti(path: str | Path) -> Volume:
    """Read a 2D, 3D or 4D NIfTI; the 4th (or 5th, vector) axis becomes channels."""
    path = Path(path)
    try:
        img: Any = nib.load(str(path))
        _check_header(path, img)
        affine = np.asarray(img.affine, dtype=np.float64)
        data = np.asanyarray(img.dataobj)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except InputError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(path, f"file is truncated or corrupt ({reason(exc)})") from None
    except MemoryError:
        raise InputError(path, "image is too large to load into memory") from None
    except _NIFTI_ERRORS as exc:
        raise InputError(path, f"not a readable NIfTI file ({reason(exc)})") from None
    if data.ndim == 5 and data.shape[3] == 1:  # NIfTI vector intent: X, Y, Z, 1, C
        data = data[:, :, :, 0, :]
    if data.ndim in (2, 3):
        arr = data[None]
    elif data.ndim == 4:
        arr = np.moveaxis(data, -1, 0)
    else:
        raise InputError(path, f"unsupported NIfTI dimensionality {data.shape}")
    if arr.dtype.kind not in "biuf":
        raise InputError(path, f"unsupported NIfTI voxel type {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(path, f"image contains {n_bad} NaN or infinite voxels")
    try:
        return Volume(np.ascontiguousarray(arr), affine)
    except Exception as exc:
        raise InputError(path, f"invalid geometry ({exc})") from None


def _label_dtype(arr: np.ndarray) -> np.dtype:
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0 and hi < 256:
        return np.dtype(np.uint8)
    if lo >= -32768 and hi < 32768:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def write_nifti(volume: Volume, path: str | Path,
                label_names: dict[int, str] | None = None) -> Path:
    """Write ``volume`` atomically; label maps get the smallest integer dtype that fits.

    ``label_names`` (value -> class name) go into the header as a JSON comment extension
    (``{"medseg_labels": {"1": "liver", ...}}``, NIfTI ecode 6) that :func:`nifti_label_names`
    reads back; other tools ignore it."""
    path = Path(path)
    arr = volume.array
    if isinstance(volume, LabelMap):
        arr = arr.astype(_label_dtype(arr), copy=False)
    elif arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    data = arr[0] if volume.n_channels == 1 else np.moveaxis(arr, 0, -1)
    if volume.n_channels > 1 and volume.spatial_ndim == 2:
        data = data[:, :, None, :]
    img = nib.Nifti1Image(np.ascontiguousarray(data), volume.affine)
    img.set_qform(volume.affine, code=1)
    img.set_sform(volume.affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if isinstance(volume, LabelMap):
        img.header.set_intent("label")
    if label_names:
        text = json.dumps({"medseg_labels": {str(k): str(v)
                                             for k, v in sorted(label_names.items())}})
        img.header.extensions.append(nib.nifti1.Nifti1Extension(6, text.encode()))
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path


def nifti_label_names(path: str | Path) -> dict[int, str]:
    """Class names written by :func:`write_nifti` (empty when the file has none)."""
    header = nib.load(str(path)).header
    for ext in getattr(header, "extensions", []):
        if ext.get_code() != 6:
            continue
        try:
            labels = json.loads(ext.get_content().decode()).get("medseg_labels")
        except (ValueError, AttributeError, UnicodeDecodeError):
            continue
        if isinstance(labels, dict):
            return {int(k): str(v) for k, v in labels.items()}
    return {}
