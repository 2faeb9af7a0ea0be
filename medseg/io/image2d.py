"""PNG, JPEG, TIFF and BMP read as 2D images (Pillow).

Pixel ``(row, col)`` becomes voxel ``(i=col, j=row)`` with 1 mm spacing and an identity
direction, so index axes follow the screen (x right, y down).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.io.guards import DECODE_ERRORS, check_declared_size, mapped, reason
from medseg.volume import LabelMap, Volume

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_MAGICS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM")
Image.MAX_IMAGE_PIXELS = 20000 * 20000  # decompression-bomb guard: 400 Mpx
_IMAGE_ERRORS: tuple[type[BaseException], ...] = (UnidentifiedImageError,
                                                  Image.DecompressionBombError, *DECODE_ERRORS)


def sniff_image2d(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return any(head.startswith(m) for m in _MAGICS)


def read_image2d(path: str | Path) -> Volume:
    path = Path(path)
    try:
        with mapped(path) as view, Image.open(view) as im:  # type: ignore[arg-type]
            bands = len(im.getbands())
            itemsize = 4 if im.mode in ("I", "F") or im.mode.startswith("I;32") else \
                2 if im.mode.startswith("I;16") else 1
            check_declared_size(path, [im.width, im.height, bands], itemsize,
                                what="image header")
            im.load()
            if im.mode in ("P", "PA", "LA", "CMYK", "YCbCr"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except InputError:
        raise
    except _IMAGE_ERRORS as exc:
        raise InputError(path, f"not a readable 2D image ({reason(exc)})") from None
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]  # drop alpha
    arr = arr.T[None] if arr.ndim == 2 else np.transpose(arr, (2, 1, 0))
    return Volume(np.ascontiguousarray(arr), np.eye(4))


def write_png(volume: Volume, path: str | Path) -> Path:
    """Write a single-channel 2D volume (for example a label map) as PNG."""
    path = Path(path)
    if volume.spatial_ndim != 2 or volume.n_channels != 1:
        raise InputError(path, "only single-channel 2D images can be written as PNG")
    arr = volume.array[0].T
    if isinstance(volume, LabelMap) or arr.dtype.kind in "iu":
        arr = arr.astype(np.uint8 if arr.max() < 256 else np.uint16)
    else:
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr - lo) / (hi - lo or 1) * 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return path
