"""NRRD, MetaImage (``.mha``/``.mhd``) and other ITK formats through SimpleITK (LPS+ world)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
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


def read_itk(path: str | Path) -> Volume:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.suffix.lower() == ".mhd":
        _check_mhd_data(path)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        msg = str(exc).strip().splitlines()[-1][:200]
        raise InputError(path, f"not a readable image ({msg})") from None
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
    affine = affine_from_geometry(img.GetSpacing(), img.GetOrigin(), img.GetDirection(), lps=True)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputError(path, "image contains NaN or infinite voxels")
    try:
        return Volume(np.ascontiguousarray(arr), affine)
    except Exception as exc:
        raise InputError(path, f"invalid geometry ({exc})") from None


def _check_mhd_data(path: Path) -> None:
    """A detached MetaImage header must point at a raw file of the declared size."""
    fields = {}
    for line in path.read_text(errors="replace").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            fields[k.strip()] = v.strip()
    data_file = fields.get("ElementDataFile")
    if not data_file or data_file == "LOCAL" or fields.get("CompressedData", "False") == "True":
        return
    raw = path.parent / data_file
    if not raw.is_file():
        raise InputError(path, f"data file {data_file} named in the header is missing")
    sizes = {"MET_UCHAR": 1, "MET_CHAR": 1, "MET_USHORT": 2, "MET_SHORT": 2, "MET_UINT": 4,
             "MET_INT": 4, "MET_FLOAT": 4, "MET_DOUBLE": 8, "MET_LONG": 8, "MET_ULONG": 8}
    dims = [int(x) for x in fields.get("DimSize", "0").split()]
    elem = sizes.get(fields.get("ElementType", ""), 0)
    ncomp = int(fields.get("ElementNumberOfChannels", "1"))
    expected = int(np.prod(dims)) * elem * ncomp
    if elem and raw.stat().st_size < expected:
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
