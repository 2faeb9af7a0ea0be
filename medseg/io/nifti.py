"""NIfTI-1/2 reading and writing with nibabel (``.nii``, ``.nii.gz``).

nibabel, not SimpleITK, reads NIfTI here: SimpleITK silently zero-fills a truncated
``.nii.gz`` while nibabel raises, and nibabel keeps the sform/qform affine exactly.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.volume import LabelMap, Volume

_NIFTI1_MAGIC = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGIC = (b"n+2\x00", b"ni2\x00")


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


def read_nifti(path: str | Path) -> Volume:
    """Read a 2D, 3D or 4D NIfTI; the 4th (or 5th, vector) axis becomes channels."""
    path = Path(path)
    try:
        img: Any = nib.load(str(path))
        affine = np.asarray(img.affine, dtype=np.float64)
        data = np.asanyarray(img.dataobj)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        detail = str(exc) or type(exc).__name__
        raise InputError(path, f"file is truncated or corrupt ({detail})") from None
    except (nib.filebasedimages.ImageFileError, ValueError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"not a readable NIfTI file ({msg})") from None
    if data.ndim == 5 and data.shape[3] == 1:  # NIfTI vector intent: X, Y, Z, 1, C
        data = data[:, :, :, 0, :]
    if data.ndim in (2, 3):
        arr = data[None]
    elif data.ndim == 4:
        arr = np.moveaxis(data, -1, 0)
    else:
        raise InputError(path, f"unsupported NIfTI dimensionality {data.shape}")
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


def write_nifti(volume: Volume, path: str | Path) -> Path:
    """Write ``volume`` atomically; label maps get the smallest integer dtype that fits."""
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
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
