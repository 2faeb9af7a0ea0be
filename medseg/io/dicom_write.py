"""Writing a 3D volume as a DICOM series (one file per slice, CT or MR Image Storage).

Used for exporting phantoms and in tests; pixel values are stored as int16 with a rescale
slope/intercept chosen to cover the intensity range.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from medseg.errors import GeometryError
from medseg.io.atomic import atomic_path
from medseg.volume import LPS_TO_RAS, Volume

_SOP_CLASS = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}


def _rescale_for(arr: np.ndarray) -> tuple[float, float]:
    if arr.dtype.kind in "iu" and arr.min() >= -32768 and arr.max() <= 32767:
        return 1.0, 0.0
    lo, hi = float(arr.min()), float(arr.max())
    slope = max((hi - lo) / 65000.0, 1e-6)
    return slope, lo + 32768 * slope


def write_dicom_series(
    volume: Volume,
    folder: str | Path,
    *,
    modality: str = "CT",
    patient_name: str = "ANONYMOUS",
    patient_id: str = "ANON",
    series_description: str = "medseg export",
    file_names: list[str] | None = None,
) -> list[Path]:
    """Write ``volume`` (3D, one channel) as one DICOM file per slice along index axis k.

    ``file_names`` (one per slice, in slice order) lets a caller choose names, for example to
    check that readers order by position and not by name.
    """
    if volume.spatial_ndim != 3 or volume.n_channels != 1:
        raise GeometryError("a DICOM series needs a single-channel 3D volume")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lps = LPS_TO_RAS @ volume.affine
    sx, sy, sz = volume.spacing
    row_dir = lps[:3, 0] / sx
    col_dir = lps[:3, 1] / sy
    data = volume.data
    slope, intercept = _rescale_for(data)
    stored = np.round((data - intercept) / slope).astype(np.int16) if slope != 1 or intercept else \
        data.astype(np.int16)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    now = datetime.datetime.now()
    n = data.shape[2]
    names = file_names or [f"slice_{k:04d}.dcm" for k in range(n)]
    if len(names) != n:
        raise GeometryError(f"{len(names)} file names for {n} slices")
    paths = []
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(_SOP_CLASS[modality])
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(names[k], {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = modality
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame
        ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
        ds.SeriesDescription = series_description
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.ImageOrientationPatient = [f"{v:.10g}" for v in (*row_dir, *col_dir)]
        pos = lps[:3, 3] + lps[:3, 2] * k
        ds.ImagePositionPatient = [f"{v:.10g}" for v in pos]
        ds.PixelSpacing = [f"{sy:.10g}", f"{sx:.10g}"]  # (between rows, between columns)
        ds.SliceThickness = f"{sz:.10g}"
        ds.Rows, ds.Columns = data.shape[1], data.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{intercept:.10g}"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        target = folder / names[k]
        with atomic_path(target) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        paths.append(target)
    return paths
