"""Bundled sample data: documented geometry, reproducible generator output, DICOM = NIfTI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg.io import read_image, read_label_map
from medseg.synth.phantoms import make_ct_case

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
BRAIN = SAMPLE / "Dataset001_BrainTissue"
CT = SAMPLE / "Dataset002_AbdomenCT"
DICOM = SAMPLE / "dicom" / "ct_phantom_001"


@pytest.mark.parametrize(("path", "orientation", "spacing", "shape"), [
    (BRAIN / "imagesTr/brain_000_0000.nii.gz", "RAS", (2.0, 2.0, 2.0), (80, 96, 80)),
    (BRAIN / "imagesTr/brain_005_0000.nii.gz", "LPS", (2.0, 2.0, 2.5), (80, 96, 64)),
    (BRAIN / "imagesTs/brain_102_0000.nii.gz", "ASL", (2.2, 2.0, 2.0), (88, 80, 80)),
    (CT / "imagesTr/abdomen_000_0000.nii.gz", "LPS", (4.0, 4.0, 5.0), (96, 96, 64)),
    (CT / "imagesTs/abdomen_102_0000.nii.gz", "RAS", (4.5, 4.5, 6.0), (84, 84, 52)),
])
def test_bundled_image_geometry(path, orientation, spacing, shape):
    image = read_image(path)
    label = read_label_map(str(path).replace("images", "labels").replace("_0000.nii", ".nii"))
    assert image.orientation == orientation
    np.testing.assert_allclose(image.spacing, spacing, atol=1e-5)
    assert image.spatial_shape == shape and image.n_channels == 1
    assert label.same_grid(image)


def test_oblique_brain_case():
    image = read_image(BRAIN / "imagesTs/brain_100_0000.nii.gz")
    direction = image.direction
    assert np.abs(direction).max(axis=0).min() < 0.99  # not aligned with the world axes
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-6)


def test_brain_labels_and_intensities():
    image = read_image(BRAIN / "imagesTr/brain_003_0000.nii.gz").data
    labels = read_label_map(BRAIN / "labelsTr/brain_003.nii.gz").data
    counts = np.bincount(labels.ravel(), minlength=4)
    assert counts.size == 4 and np.all(counts > 0)
    assert counts[3] < counts[1] < counts[2]  # CSF is the rare class, GM the largest tissue
    wm, gm, csf = (np.median(image[labels == v]) for v in (1, 2, 3))
    assert wm > gm > csf > np.median(image[labels == 0])  # T1 contrast


def test_ct_cases_regenerate_from_their_seeds():
    """The committed files are what medseg.synth.phantoms makes today (guards against drift)."""
    image = read_image(CT / "imagesTs/abdomen_102_0000.nii.gz")
    labels = read_label_map(CT / "labelsTs/abdomen_102.nii.gz")
    new_image, new_labels = make_ct_case(2002, (84, 84, 52), (4.5, 4.5, 6.0), orientation="RAS")
    np.testing.assert_allclose(image.affine, new_image.affine, atol=1e-5)
    np.testing.assert_array_equal(labels.data, new_labels.data)
    diff = np.abs(image.data.astype(int) - new_image.data)
    assert diff.max() <= 1 and np.count_nonzero(diff) < 10  # rounding ties only


def test_dicom_series_equals_its_nifti():
    dicom = read_image(DICOM)
    nifti = read_image(CT / "imagesTs/abdomen_101_0000.nii.gz")
    assert dicom.spatial_shape == nifti.spatial_shape
    np.testing.assert_array_equal(dicom.data.astype(np.int32), nifti.data.astype(np.int32))
    np.testing.assert_allclose(dicom.affine, nifti.affine, atol=1e-4)


def test_dicom_series_headers():
    files = sorted(DICOM.glob("*.dcm"))
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert len(files) == 60
    assert {h.SOPClassUID for h in headers} == {"1.2.840.10008.5.1.4.1.1.2"}
    for tag in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({getattr(h, tag) for h in headers}) == 1
    assert len({h.SOPInstanceUID for h in headers}) == len(files)
    assert {str(h.PatientName) for h in headers} == {"PHANTOM^CT"}
    first = headers[0]
    assert first.PixelRepresentation == 1 and first.BitsAllocated == 16
    assert float(first.RescaleIntercept) == -1024 and float(first.RescaleSlope) == 1
    # file names are deliberately not in slice order
    z_by_name = [float(h.ImagePositionPatient[2]) for h in headers]
    assert z_by_name != sorted(z_by_name)


def test_dataset_json_documents_origin():
    for folder in (BRAIN, CT):
        meta = json.loads((folder / "dataset.json").read_text())
        assert meta["file_ending"] == ".nii.gz"
        assert meta["licence"] and meta["reference"] and meta["description"]
    assert "Collins" in (SAMPLE / "LICENSES.md").read_text()
    readme = (SAMPLE / "README.md").read_text()
    for name in ("make_mri_tissue.py", "make_ct_organs.py", "ct_phantom_001"):
        assert name in readme
