"""Build sample_data/Dataset002_AbdomenCT (synthetic CT organ phantoms) and a DICOM export.

Run from the repository root:  python sample_data/scripts/make_ct_organs.py

Every case comes from :func:`medseg.synth.phantoms.make_ct_case` with a fixed seed, grid and
orientation (listed in CASES below), so the output is reproducible.  Test case ``abdomen_101``
is also written as a DICOM CT series (one file per slice, file names not in slice order) into
sample_data/dicom/ct_phantom_001/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medseg.io import write_image
from medseg.synth.phantoms import CT_LABELS, make_ct_case
from medseg.volume import LPS_TO_RAS, Volume

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "Dataset002_AbdomenCT"
DICOM_OUT = ROOT / "dicom" / "ct_phantom_001"

# (case id, seed, shape, spacing mm, stored orientation); the field of view always covers
# about 360 x 360 x 300 mm.  Test cases use grids not seen in training.
TRAIN = [
    ("abdomen_000", 1000, (96, 96, 64), (4.0, 4.0, 5.0), "LPS"),
    ("abdomen_001", 1001, (96, 96, 64), (4.0, 4.0, 5.0), "RAS"),
    ("abdomen_002", 1002, (90, 90, 60), (4.2, 4.2, 5.0), "LPS"),
    ("abdomen_003", 1003, (100, 100, 60), (3.8, 3.8, 5.0), "LPS"),
    ("abdomen_004", 1004, (96, 96, 80), (4.0, 4.0, 4.0), "RAS"),
    ("abdomen_005", 1005, (86, 86, 54), (4.4, 4.4, 6.0), "LPS"),
    ("abdomen_006", 1006, (96, 96, 64), (4.0, 4.0, 5.0), "LPS"),
    ("abdomen_007", 1007, (92, 92, 64), (4.1, 4.1, 5.0), "RAS"),
    ("abdomen_008", 1008, (104, 104, 64), (3.6, 3.6, 5.0), "LPS"),
    ("abdomen_009", 1009, (96, 96, 72), (4.0, 4.0, 4.5), "LPS"),
    ("abdomen_010", 1010, (88, 88, 60), (4.3, 4.3, 5.0), "RAS"),
    ("abdomen_011", 1011, (96, 96, 64), (4.0, 4.0, 5.0), "LPS"),
]
TEST = [
    ("abdomen_101", 2001, (96, 96, 60), (4.0, 4.0, 5.0), "LPS"),  # also exported as DICOM
    ("abdomen_102", 2002, (84, 84, 52), (4.5, 4.5, 6.0), "RAS"),
    ("abdomen_103", 2003, (100, 100, 68), (3.8, 3.8, 4.5), "LPS"),
]
DICOM_CASE = "abdomen_101"


def write_dicom_series(image: Volume, folder: Path, *, seed: int) -> list[Path]:
    """Write an axial int16 HU volume as a CT Image Storage series, one file per slice.

    The image must be stored axially (index ``k`` along the slice normal).  Stored values are
    ``HU + 1024`` (int16) with RescaleIntercept -1024.  UIDs derive from ``seed`` so reruns give
    identical files; file names are a seeded permutation, not the slice order.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    lps = LPS_TO_RAS @ image.affine  # LPS_TO_RAS is its own inverse
    row_dir = lps[:3, 0] / np.linalg.norm(lps[:3, 0])
    col_dir = lps[:3, 1] / np.linalg.norm(lps[:3, 1])
    sx, sy, sz = image.spacing
    study, series, frame = (generate_uid(entropy_srcs=[f"medseg-ct-phantom-{seed}-{k}"])
                            for k in ("study", "series", "frame"))
    data = image.data
    n = data.shape[2]
    names = np.random.default_rng(seed).permutation(n)
    paths = []
    for k in range(n):
        sop = generate_uid(entropy_srcs=[f"medseg-ct-phantom-{seed}-slice-{k}"])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"IM{names[k]:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality = "CT"
        ds.PatientName = "PHANTOM^CT"
        ds.PatientID = "MEDSEG-PHANTOM-001"
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyDate = ds.SeriesDate = "20240101"
        ds.StudyID = "1"
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = "Synthetic abdominal CT phantom (medseg.synth.phantoms, seed 2001)"
        ds.Manufacturer = "medseg synthetic phantom"
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in lps[:3, 3] + k * lps[:3, 2]]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [f"{sy:.6f}", f"{sx:.6f}"]  # row spacing (j), column spacing (i)
        ds.SliceThickness = f"{sz:.6f}"
        ds.SpacingBetweenSlices = f"{sz:.6f}"
        ds.SliceLocation = f"{float(lps[2, 3] + k * lps[2, 2]):.6f}"
        ds.KVP = "120"
        ds.RescaleSlope = "1"
        ds.RescaleIntercept = "-1024"
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = data.shape[1], data.shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        stored = (data[:, :, k].T.astype(np.int32) + 1024).astype(np.int16)
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (OUT / sub).mkdir(parents=True)
    for split, cases in (("Tr", TRAIN), ("Ts", TEST)):
        for case_id, seed, shape, spacing, orientation in cases:
            image, labels = make_ct_case(seed, shape, spacing, orientation=orientation)
            write_image(image, OUT / f"images{split}" / f"{case_id}_0000.nii.gz")
            write_image(labels, OUT / f"labels{split}" / f"{case_id}.nii.gz")
            if case_id == DICOM_CASE:
                write_dicom_series(image, DICOM_OUT, seed=seed)
            print(case_id, image.spatial_shape, image.spacing, image.orientation)
    meta = {
        "name": "AbdomenCT",
        "description": (
            "Synthetic abdominal CT phantoms in Hounsfield units (medseg.phantoms.make_ct_case): "
            "body with fat layer, liver, spleen, kidneys, contrast-filled aorta, vertebrae and a "
            "small liver lesion; Gaussian noise and partial-volume blur; varying spacings and "
            "LPS/RAS storage. Not real patient data."
        ),
        "reference": "medseg, sample_data/scripts/make_ct_organs.py",
        "licence": "Apache-2.0 (generated by medseg; no third-party data)",
        "release": "1.0",
        "channel_names": {"0": "CT"},
        "labels": CT_LABELS,
        "numTraining": len(TRAIN),
        "file_ending": ".nii.gz",
    }
    (OUT / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
