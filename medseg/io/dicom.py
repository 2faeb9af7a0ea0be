"""DICOM reading: a series folder, a zipped series, or a single (multi-frame) file.

Slices are ordered by their position along the slice normal (``ImagePositionPatient`` projected
on ``row x column`` of ``ImageOrientationPatient``), never by file name or InstanceNumber.
The affine is built in LPS+ as DICOM defines it and converted to RAS+.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import BytesLengthException, InvalidDicomError

from medseg.errors import GeometryError, InputError, MultipleSeriesError
from medseg.io.archive import safe_extract_zip
from medseg.io.dicom_deflate import check_deflated
from medseg.io.guards import DECODE_ERRORS, check_declared_size, mapped, reason
from medseg.volume import LPS_TO_RAS, Volume

#: Relative tolerance on the spacing between consecutive slices.
SLICE_SPACING_RTOL = 0.01
#: what pydicom and its pixel handlers raise on malformed files
_DICOM_ERRORS: tuple[type[BaseException], ...] = (InvalidDicomError, BytesLengthException,
                                                  *DECODE_ERRORS)
_NON_IMAGE_MODALITIES = {"SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "DOC"}


def sniff_dicom_file(path: Path) -> bool:
    """True for a file with the ``DICM`` preamble magic."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def sniff_dicom(path: Path) -> bool:
    """A DICOM file, a folder holding DICOM files, or a zip (checked when opened)."""
    if path.is_dir():
        return any(sniff_dicom_file(p) for p in _iter_files(path))
    if path.is_file() and path.suffix.lower() == ".zip":
        return True
    return path.is_file() and sniff_dicom_file(path)


def dcmread(path: Path, *, stop_before_pixels: bool = False) -> pydicom.Dataset:
    """``pydicom.dcmread`` through a read-only memory map (:func:`~medseg.io.guards.mapped`):
    a corrupt element length cannot make it allocate more than the file holds, and a deflated
    dataset is inflated only within the limits (:mod:`~medseg.io.dicom_deflate`)."""
    with mapped(path) as view:
        check_deflated(view, path)  # type: ignore[arg-type]
        return pydicom.dcmread(view, stop_before_pixels=stop_before_pixels)  # type: ignore[arg-type]


def _iter_files(folder: Path):
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.name != "DICOMDIR":
            yield p


@dataclass
class _Slice:
    path: Path
    ds: pydicom.Dataset


def _series_key(ds: pydicom.Dataset) -> str:
    return str(getattr(ds, "SeriesInstanceUID", "") or "unknown-series")


def list_series(path: str | Path) -> list[dict]:
    """Describe every series under a folder: uid, description, modality, slice count."""
    groups = _scan(Path(path))
    return [_describe(uid, items) for uid, items in groups.items()]


def _describe(uid: str, items: list[_Slice]) -> dict:
    ds = items[0].ds
    return {
        "uid": uid,
        "description": str(getattr(ds, "SeriesDescription", "") or ""),
        "modality": str(getattr(ds, "Modality", "") or ""),
        "count": len(items),
    }


def _scan(folder: Path) -> dict[str, list[_Slice]]:
    groups: dict[str, list[_Slice]] = defaultdict(list)
    for p in _iter_files(folder):
        if not sniff_dicom_file(p):
            continue
        try:
            ds = dcmread(p, stop_before_pixels=True)
            if str(getattr(ds, "Modality", "")) in _NON_IMAGE_MODALITIES:
                continue  # structured reports, presentation states, RT structures, ...
            if "Rows" not in ds or "Columns" not in ds:
                raise InputError(p, "truncated or incomplete DICOM file (no image attributes)")
            key = _series_key(ds)
        except _DICOM_ERRORS as exc:
            raise InputError(p, f"corrupt DICOM file ({reason(exc)})") from None
        groups[key].append(_Slice(p, ds))
    return dict(groups)


def read_dicom(path: str | Path, series: str | None = None) -> Volume:
    """Read a DICOM series from a folder or zip, or a single (multi-frame) DICOM file.

    ``series`` picks one SeriesInstanceUID when the folder holds several.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        return _read_any(path, series)
    except GeometryError as exc:
        raise InputError(path, f"invalid geometry ({exc})") from None
    except _DICOM_ERRORS as exc:
        # malformed attribute values surface lazily (pydicom parses elements on access)
        raise InputError(path, f"malformed DICOM data ({reason(exc)})") from None


def _read_any(path: Path, series: str | None) -> Volume:
    if path.is_file() and path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="medseg-dicom-") as tmp:
            safe_extract_zip(path, tmp)
            try:
                return _read_folder(Path(tmp), series, shown=path)
            except InputError as exc:
                # report the archive, not the temporary folder
                raise InputError(path, exc.problem.replace(tmp, "")) from None
    if path.is_dir():
        return _read_folder(path, series, shown=path)
    return _read_single(path)


def _read_folder(folder: Path, series: str | None, shown: Path) -> Volume:
    groups = _scan(folder)
    if not groups:
        raise InputError(shown, "no DICOM image files found")
    if series is not None:
        if series not in groups:
            raise InputError(shown, f"series {series} not found; available: {', '.join(groups)}")
        items = groups[series]
    elif len(groups) > 1:
        raise MultipleSeriesError(shown, [_describe(u, i) for u, i in groups.items()])
    else:
        items = next(iter(groups.values()))
    if len(items) == 1:
        return _read_single(items[0].path)
    return _stack(items, shown)


def _orientation(ds: pydicom.Dataset, where: Path) -> tuple[np.ndarray, np.ndarray]:
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is None or len(iop) != 6:
        raise InputError(where, "missing ImageOrientationPatient; cannot place slices in space")
    row = np.asarray(iop[:3], dtype=float)
    col = np.asarray(iop[3:], dtype=float)
    return row / np.linalg.norm(row), col / np.linalg.norm(col)


def _pixel_spacing(ds: pydicom.Dataset) -> tuple[float, float]:
    ps = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
    if ps is None:
        return 1.0, 1.0
    return float(ps[0]), float(ps[1])  # (between rows, between columns)


def _rescale(ds: pydicom.Dataset, pixels: np.ndarray) -> np.ndarray:
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    if slope == 1 and intercept == 0:
        return pixels
    out = pixels.astype(np.float64) * slope + intercept
    if slope == int(slope) and intercept == int(intercept):
        lo, hi = out.min(), out.max()
        if lo >= -32768 and hi < 32768:
            return out.astype(np.int16)
        return out.astype(np.int32)
    return out.astype(np.float32)


def _declared_frame(ds: pydicom.Dataset) -> tuple[list[int], int]:
    """(frames, rows, columns, samples) and bytes per sample, as the header declares them."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    bits = int(getattr(ds, "BitsAllocated", 16) or 16)
    return [frames, rows, cols, samples], max(1, (bits + 7) // 8)


def _pixels(path: Path) -> tuple[pydicom.Dataset, np.ndarray]:
    try:
        ds = dcmread(path)
        if "PixelData" not in ds and "FloatPixelData" not in ds \
                and "DoubleFloatPixelData" not in ds:
            raise InputError(path, "DICOM file holds no pixel data")
        shape, itemsize = _declared_frame(ds)
        check_declared_size(path, shape, itemsize, what="DICOM header")
        pixels = ds.pixel_array
    except InputError:
        raise
    except MemoryError:
        raise InputError(path, "DICOM pixel data is too large to load into memory") from None
    except _DICOM_ERRORS as exc:
        raise InputError(path, f"cannot decode DICOM pixel data ({reason(exc)})") from None
    return ds, pixels


def _affine(row: np.ndarray, col: np.ndarray, normal_step: np.ndarray,
            spacing_rc: tuple[float, float], origin: np.ndarray) -> np.ndarray:
    lps = np.eye(4)
    lps[:3, 0] = row * spacing_rc[1]  # index i runs along a row (across columns)
    lps[:3, 1] = col * spacing_rc[0]  # index j runs down a column (across rows)
    lps[:3, 2] = normal_step
    lps[:3, 3] = origin
    return LPS_TO_RAS @ lps


def _to_volume(frames: list[np.ndarray], affine: np.ndarray) -> Volume:
    # each frame is (rows, cols) or (rows, cols, samples); medseg layout is (C, i=col, j=row, k)
    stack = np.stack(frames, axis=-1)  # rows, cols, [samples], k
    if stack.ndim == 3:
        arr = np.transpose(stack, (1, 0, 2))[None]
    else:
        arr = np.transpose(stack, (2, 1, 0, 3))
    return Volume(np.ascontiguousarray(arr), affine)


def _sort_slices(items: list[_Slice], shown: Path) -> tuple[list[_Slice], list[np.ndarray]]:
    """Order slices along the normal; check orientation, duplicates and uniform spacing."""
    first = items[0].ds
    row, col = _orientation(first, items[0].path)
    normal = np.cross(row, col)
    positions = []
    for it in items:
        ipp = getattr(it.ds, "ImagePositionPatient", None)
        if ipp is None:
            raise InputError(it.path, "missing ImagePositionPatient; cannot order slices")
        r2, c2 = _orientation(it.ds, it.path)
        if not (np.allclose(r2, row, atol=1e-3) and np.allclose(c2, col, atol=1e-3)):
            raise InputError(shown, "slices of the series have different orientations")
        positions.append(np.asarray(ipp, dtype=float))
    dist = np.array([float(p @ normal) for p in positions])
    order = np.argsort(dist, kind="stable")
    gaps = np.diff(dist[order])
    if np.any(gaps < 1e-4):
        raise InputError(shown, "series has several slices at the same position")
    step = float(np.median(gaps))
    if np.max(np.abs(gaps - step)) > SLICE_SPACING_RTOL * step + 1e-3:
        raise InputError(
            shown,
            f"slice spacing is not uniform ({gaps.min():.3f} to {gaps.max():.3f} mm); "
            "resample the series before use",
        )
    return [items[i] for i in order], [positions[i] for i in order]


def _stack(items: list[_Slice], shown: Path) -> Volume:
    sorted_items, pos = _sort_slices(items, shown)
    first = sorted_items[0].ds
    declared, itemsize = _declared_frame(first)
    check_declared_size(shown, [len(sorted_items), *declared], itemsize, what="DICOM series")
    row, col = _orientation(first, sorted_items[0].path)
    frames = []
    shape = None
    for it in sorted_items:
        ds, px = _pixels(it.path)
        if shape is None:
            shape = px.shape
        elif px.shape != shape:
            raise InputError(it.path, f"slice shape {px.shape} differs from {shape}")
        frames.append(_rescale(ds, px))
    normal_step = (pos[-1] - pos[0]) / (len(pos) - 1)
    affine = _affine(row, col, normal_step, _pixel_spacing(first), pos[0])
    return _to_volume(frames, affine)


def series_datasets(path: str | Path, series: str | None = None) -> list[pydicom.Dataset]:
    """The source datasets of a series folder or zip, in the slice order of :func:`read_dicom`
    (index k of the volume is element k). Used to reference the source in DICOM SEG."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="medseg-dicom-") as tmp:
            safe_extract_zip(path, tmp)
            return series_datasets(tmp, series)
    if path.is_file():
        return [dcmread(path)]
    groups = _scan(path)
    if not groups:
        raise InputError(path, "no DICOM image files found")
    if series is None and len(groups) > 1:
        raise MultipleSeriesError(path, [_describe(u, i) for u, i in groups.items()])
    items = groups[series] if series is not None else next(iter(groups.values()))
    ordered = _sort_slices(items, path)[0] if len(items) > 1 else items
    return [dcmread(it.path) for it in ordered]


def _read_single(path: Path) -> Volume:
    if not sniff_dicom_file(path):
        raise InputError(path, "not a DICOM file (no DICM preamble)")
    ds, px = _pixels(path)
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if n_frames == 1 or (samples > 1 and px.ndim == 3):
        px = px[None]
    frames = list(px)
    shared = getattr(ds, "SharedFunctionalGroupsSequence", [None])[0]
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if per_frame is not None and len(per_frame) == n_frames:
        return _enhanced(path, ds, frames, shared, per_frame)
    try:
        row, col = _orientation(ds, path)
    except InputError:
        row, col = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    origin = np.asarray(getattr(ds, "ImagePositionPatient", [0, 0, 0]), dtype=float)
    thickness = float(
        getattr(ds, "SpacingBetweenSlices", None) or getattr(ds, "SliceThickness", None) or 1.0
    )
    affine = _affine(row, col, np.cross(row, col) * thickness, _pixel_spacing(ds), origin)
    return _to_volume([_rescale(ds, f) for f in frames], affine)


def _fg(item, shared, name: str):
    for group in (item, shared):
        if group is not None and name in group:
            return group[name].value[0]
    return None


def _enhanced(path: Path, ds, frames, shared, per_frame) -> Volume:
    """Enhanced multi-frame: geometry lives in the functional group sequences."""
    orient = _fg(per_frame[0], shared, "PlaneOrientationSequence")
    measures = _fg(per_frame[0], shared, "PixelMeasuresSequence")
    if orient is None or measures is None:
        raise InputError(path, "multi-frame file without plane orientation / pixel measures")
    row, col = _orientation(orient, path)
    normal = np.cross(row, col)
    positions, rescaled = [], []
    for f, item in zip(frames, per_frame, strict=True):
        pos = _fg(item, shared, "PlanePositionSequence")
        if pos is None:
            raise InputError(path, "multi-frame file without per-frame positions")
        positions.append(np.asarray(pos.ImagePositionPatient, dtype=float))
        trans = _fg(item, shared, "PixelValueTransformationSequence")
        rescaled.append(_rescale(trans if trans is not None else ds, f))
    dist = np.array([p @ normal for p in positions])
    order = np.argsort(dist, kind="stable")
    pos = [positions[i] for i in order]
    frames_sorted = [rescaled[i] for i in order]
    if len(pos) > 1:
        gaps = np.diff(dist[order])
        if np.any(gaps < 1e-4):
            raise InputError(path, "multi-frame file has several frames at the same position")
        step_vec = (pos[-1] - pos[0]) / (len(pos) - 1)
    else:
        step_vec = normal * float(getattr(measures, "SliceThickness", 1.0) or 1.0)
    spacing = (float(measures.PixelSpacing[0]), float(measures.PixelSpacing[1]))
    return _to_volume(frames_sorted, _affine(row, col, step_vec, spacing, pos[0]))
