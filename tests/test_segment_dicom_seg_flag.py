"""``--dicom-seg`` asks for a DICOM SEG, which references the DICOM series it segments: on an
input that is not DICOM it says so (a warning naming each such input, whose mask is still
written), instead of silently writing no SEG."""

from __future__ import annotations

from pathlib import Path

from medseg.cli import main

ROOT = Path(__file__).resolve().parents[1]
NIFTI = ROOT / "sample_data" / "Dataset002_AbdomenCT" / "imagesTs" / "abdomen_101_0000.nii.gz"
DICOM = ROOT / "sample_data" / "dicom" / "ct_phantom_001"


def test_dicom_seg_on_nifti_only_warns_and_writes_the_mask(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(NIFTI), "-o", str(out), "-m", "abdomen_ct", "--dicom-seg",
                 "--quiet", "--fast"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0
    assert [line for line in err if line.startswith("medseg: warning:")] == [
        f"medseg: warning: {NIFTI}: not a DICOM series, so no DICOM SEG is written for it "
        "(--dicom-seg needs DICOM input to reference)"]
    assert (out / "abdomen_101.nii.gz").is_file()
    assert not list(out.glob("*.dcm"))


def test_dicom_seg_with_mixed_inputs_warns_for_the_nifti_and_writes_the_seg(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(NIFTI), str(DICOM), "-o", str(out), "-m", "abdomen_ct",
                 "--dicom-seg", "--quiet", "--fast"])
    err = capsys.readouterr().err
    assert code == 0
    assert f"medseg: warning: {NIFTI}: not a DICOM series, so no DICOM SEG is written" in err
    assert (out / "ct_phantom_001_seg.dcm").is_file()
    assert not (out / "abdomen_101_seg.dcm").exists()
    assert (out / "abdomen_101.nii.gz").is_file()
