"""The de-identified SEG says what was done to it (issue 25, point 6): SeriesDescription
"medseg segmentation" survives the profile, ContentDate is the day it was made (not the
profile's 19000101 dummy), PatientIdentityRemoved is YES and DeidentificationMethod (with its
code sequence) names PS3.15's Basic Profile and the options used. dciodvfy (dicom3tools)
checks the file when installed."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg.engine.segmenter import Segmentation
from medseg.io import read_image
from medseg.io.dicom_seg import write_dicom_seg
from medseg.volume import LabelMap

SERIES = Path(__file__).resolve().parents[1] / "sample_data" / "dicom" / "ct_phantom_001"


def _result() -> Segmentation:
    image = read_image(SERIES)
    labels = np.zeros(image.spatial_shape, dtype=np.uint8)
    labels[4:12, 5:14, 2:6] = 1
    labels[20:26, 20:30, 3:9] = 2
    return Segmentation(LabelMap.from_spatial(labels, image.affine), {0: "background",
                                                                      1: "liver", 2: "spleen"})


@pytest.mark.parametrize("keep_dates", [False, True])
def test_deidentified_seg_is_marked_and_keeps_its_description(tmp_path, keep_dates):
    before = datetime.now().strftime("%Y%m%d")
    path = write_dicom_seg(_result(), SERIES, tmp_path / "seg.dcm", keep_dates=keep_dates)
    after = datetime.now().strftime("%Y%m%d")
    seg = pydicom.dcmread(path)
    assert seg.SeriesDescription == "medseg segmentation"
    assert seg.ContentDate in (before, after) and seg.ContentDate != "19000101"
    assert seg.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in seg.DeidentificationMethodCodeSequence]
    assert codes == (["113100", "113110", "113106"] if keep_dates else ["113100", "113110"])
    methods = list(seg.DeidentificationMethod) if seg["DeidentificationMethod"].VM > 1 else [
        seg.DeidentificationMethod]
    assert "Basic Application Confidentiality Profile" in methods[0]
    assert all(len(m) <= 64 for m in methods)
    source = pydicom.dcmread(sorted(SERIES.iterdir())[0])
    if source.get("PatientName"):
        assert str(seg.PatientName) != str(source.PatientName)


def test_seg_with_patient_data_is_not_marked(tmp_path):
    seg = pydicom.dcmread(write_dicom_seg(_result(), SERIES, tmp_path / "seg.dcm",
                                          keep_patient_data=True))
    assert "PatientIdentityRemoved" not in seg and "DeidentificationMethod" not in seg
    assert seg.SeriesDescription == "medseg segmentation"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="needs dicom3tools' dciodvfy")
def test_dciodvfy_finds_no_error(tmp_path):
    path = write_dicom_seg(_result(), SERIES, tmp_path / "seg.dcm")
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    errors = [line for line in (out.stdout + out.stderr).splitlines()
              if line.startswith("Error")]
    assert errors == []
