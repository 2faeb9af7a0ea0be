"""NRRD, MetaImage (``.mha``/``.mhd``) and other ITK formats through SimpleITK (LPS+ world)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.io.guards import check_declared_size, reason
from medseg.volume import LPS_TO_RAS, LabelMap, Volume, affine_from_geometry

ITK_EXTENSIONS = (".nrrd", ".nhdr", ".mha", ".mhd")


def sniff_itk(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    if head.startswith(b"NRRD"):
        return True
    return path.suffix.lower() in (".mha", ".mhd") and b"ObjectType" in head


def _component_bytes(pixel_id: int) -> int:
    """Bytes per component from SimpleITK's pixel type text ("vector of 16-bit ...")."""
    text = sitk.GetPixelIDValueAsString(pixel_id)
    bits = next((int(w.split("-")[0]) for w in text.split() if w.endswith("-bit")), 64)
    return bits // 8 * (2 if "complex" in text else 1)


def _check_header(path: Path, reader: sitk.ImageFileReader) -> None:
    """Refuse absurd or oversized headers before SimpleITK allocates the image."""
    shape = list(reader.GetSize())
    itemsize = _component_bytes(reader.GetPixelID()) * max(reader.GetNumberOfComponents(), 1)
    spacing = np.asarray(reader.GetSpacing(), dtype=float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(path, f"header declares invalid voxel spacing {spacing.tolist()}")
    if not np.all(np.isfinite(reader.GetOrigin())) or \
            not np.all(np.isfinite(reader.GetDirection())):
        raise InputError(path, "header declares a NaN or infinite origin or direction")
    # a self-contained file cannot expand beyond the DEFLATE ratio; a detached header's data
    # file is checked by _check_mhd_data (raw) or by SimpleITK itself
    available = path.stat().st_size if path.suffix.lower() in (".mha", ".nrrd") else None
    check_declared_size(path, shape, itemsize, available=available, compressed=True,
                        what="image header")


#: MetaImage fields with one number per dimension (or per direction entry), checked before
#: SimpleITK parses them: MetaIO crashes the process (SIGSEGV) on ``NDims = -1`` and friends
_META_VECTORS = {"DimSize": 1, "ElementSpacing": 1, "ElementSize": 1, "Offset": 1,
                 "Position": 1, "Origin": 1, "CenterOfRotation": 1, "TransformMatrix": 2,
                 "Rotation": 2, "Orientation": 2}
_META_TYPES = {"MET_UCHAR", "MET_CHAR", "MET_USHORT", "MET_SHORT", "MET_UINT", "MET_INT",
               "MET_ULONG", "MET_LONG", "MET_ULONG_LONG", "MET_LONG_LONG", "MET_FLOAT",
               "MET_DOUBLE"}


def _header_fields(path: Path, sep: str, end_key: str | None) -> dict[str, str]:
    """``key sep value`` lines of a text header (up to ``end_key`` or a blank line)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    fields: dict[str, str] = {}
    for raw in head.split(b"\n"):
        line = raw.decode("latin-1").strip()
        if not line and end_key is None:
            break
        if sep not in line or line.startswith("#"):
            continue
        key, value = (part.strip() for part in line.split(sep, 1))
        fields[key] = value
        if key == end_key:
            break
    return fields


def _numbers(path: Path, key: str, text: str, count: int, *, integer: bool) -> list[float]:
    try:
        values = [int(v) if integer else float(v) for v in text.split()]
    except ValueError:
        values = []
    if len(values) != count or not all(np.isfinite(values)):
        raise InputError(path, f"malformed image header: {key} = {text[:60]!r}")
    return values


def _check_meta_header(path: Path) -> None:
    """Validate a MetaImage (``.mha``/``.mhd``) header in Python before SimpleITK reads it."""
    fields = _header_fields(path, "=", "ElementDataFile")
    ndims = _numbers(path, "NDims", fields.get("NDims", ""), 1, integer=True)[0]
    if ndims not in (2, 3):
        raise InputError(path, f"unsupported image header: NDims = {fields['NDims'][:20]} "
                               "(2 or 3 supported)")
    n = int(ndims)
    for key, power in _META_VECTORS.items():
        if key in fields:
            values = _numbers(path, key, fields[key], n**power, integer=key == "DimSize")
            if key == "DimSize" and min(values) <= 0:
                raise InputError(path, f"image header declares an empty or negative size "
                                       f"{[int(v) for v in values]}")
    if "DimSize" not in fields or fields.get("ElementType") not in _META_TYPES:
        raise InputError(path, "malformed image header: DimSize or ElementType missing or "
                               "unknown")
    for key in ("ElementNumberOfChannels", "HeaderSize", "CompressedDataSize"):
        if key in fields:
            value = _numbers(path, key, fields[key], 1, integer=True)[0]
            low = -1 if key == "HeaderSize" else (1 if key == "ElementNumberOfChannels" else 0)
            if not low <= value < 2**40 or (key == "ElementNumberOfChannels" and value > 1024):
                raise InputError(path, f"malformed image header: {key} = {fields[key][:20]}")


def _check_nrrd_header(path: Path) -> None:
    """Validate a NRRD header's dimension and sizes in Python before SimpleITK reads it."""
    fields = _header_fields(path, ":", None)
    dim = _numbers(path, "dimension", fields.get("dimension", ""), 1, integer=True)[0]
    if not 1 <= dim <= 16:
        raise InputError(path, f"malformed image header: dimension = {fields['dimension'][:20]}")
    sizes = _numbers(path, "sizes", fields.get("sizes", ""), int(dim), integer=True)
    if min(sizes) <= 0:
        raise InputError(path, f"image header declares an empty or negative size "
                               f"{[int(v) for v in sizes]}")


def read_itk(path: str | Path) -> Volume:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix in (".mha", ".mhd"):
        _check_meta_header(path)
    elif suffix in (".nrrd", ".nhdr"):
        _check_nrrd_header(path)
    if suffix == ".mhd":
        _check_mhd_data(path)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        _check_header(path, reader)
        img = reader.Execute()
    except RuntimeError as exc:
        msg = " ".join(str(exc).strip().splitlines()[-1:])[:200] or type(exc).__name__
        raise InputError(path, f"not a readable image ({msg})") from None
    except MemoryError:
        raise InputError(path, "image is too large to load into memory") from None
    ndim = img.GetDimension()
    if ndim not in (2, 3):
        raise InputError(path, f"unsupported {ndim}D ITK image")
    arr = sitk.GetArrayFromImage(img)  # (z, y, x[, c])
    ncomp = img.GetNumberOfComponentsPerPixel()
    if ncomp > 1:
        arr = np.moveaxis(arr, -1, 0)  # c, z, y, x
        arr = np.transpose(arr, (0, *range(ndim, 0, -1)))
    else:
        arr = arr.T[None]
    if arr.dtype.kind not in "biuf":
        raise InputError(path, f"unsupported voxel type {arr.dtype}")
    try:
        affine = affine_from_geometry(img.GetSpacing(), img.GetOrigin(), img.GetDirection(),
                                      lps=True)
    except Exception as exc:
        raise InputError(path, f"invalid geometry ({reason(exc)})") from None
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputError(path, "image contains NaN or infinite voxels")
    try:
        return Volume(np.ascontiguousarray(arr), affine)
    except Exception as exc:
        raise InputError(path, f"invalid geometry ({exc})") from None


def _check_mhd_data(path: Path) -> None:
    """A detached MetaImage header must point at a raw file of the declared size."""
    if path.stat().st_size > 1 << 20:
        raise InputError(path, "MetaImage header is larger than 1 MB; not a header")
    fields = {}
    for line in path.read_text(errors="replace").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            fields[k.strip()] = v.strip()
    data_file = fields.get("ElementDataFile")
    if not data_file or data_file == "LOCAL" or fields.get("CompressedData", "False") == "True":
        return
    raw = path.parent / data_file
    if "LIST" in data_file or "%" in data_file:
        return  # a list or pattern of slice files: SimpleITK checks them
    if not raw.is_file():
        raise InputError(path, f"data file {data_file} named in the header is missing")
    sizes = {"MET_UCHAR": 1, "MET_CHAR": 1, "MET_USHORT": 2, "MET_SHORT": 2, "MET_UINT": 4,
             "MET_INT": 4, "MET_FLOAT": 4, "MET_DOUBLE": 8, "MET_LONG": 8, "MET_ULONG": 8}
    try:
        dims = [int(x) for x in fields.get("DimSize", "0").split()]
        ncomp = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError:
        raise InputError(path, "MetaImage header has a non-integer DimSize or channel count")\
            from None
    elem = sizes.get(fields.get("ElementType", ""), 0)
    if not elem:
        return
    expected = check_declared_size(path, [*dims, ncomp], elem, what="MetaImage header")
    if raw.stat().st_size < expected:
        raise InputError(path, f"data file {data_file} is truncated "
                               f"({raw.stat().st_size} of {expected} bytes)")


def to_sitk(volume: Volume) -> sitk.Image:
    """Convert to a SimpleITK image (LPS+ origin/direction)."""
    n = volume.spatial_ndim
    arr = volume.array
    if isinstance(volume, LabelMap) and arr.dtype == np.int64:
        arr = arr.astype(np.int32)
    if volume.n_channels == 1:
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr[0].T))
    else:
        spatial_t = np.transpose(arr, (0, *range(n, 0, -1)))
        img = sitk.GetImageFromArray(np.ascontiguousarray(np.moveaxis(spatial_t, 0, -1)),
                                     isVector=True)
    lps = LPS_TO_RAS @ volume.affine
    img.SetSpacing(volume.spacing)
    img.SetOrigin(tuple(lps[:n, 3]))
    d = lps[:3, :3] / np.linalg.norm(lps[:3, :3], axis=0)
    img.SetDirection(tuple(d[:n, :n].ravel()))
    return img


def write_itk(volume: Volume, path: str | Path) -> Path:
    path = Path(path)
    if volume.spatial_ndim == 2 and not np.allclose(volume.affine[2, :2], 0):
        raise InputError(path, "an oblique 2D plane cannot be stored in a 2D ITK image")
    with atomic_path(path) as tmp:
        sitk.WriteImage(to_sitk(volume), str(tmp), useCompression=True)
    return path
