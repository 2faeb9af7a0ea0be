"""Modality (issue 25, point 4): models declare theirs, an input's is read from DICOM or
guessed from its intensities, and a model made for another modality gives a QC ``warn`` with
the reason (a CT model on an MR head, an MR model on a CT series) and a banner on the Segment
page, which picks no model until the input's modality suggests one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medseg.cli import main
from medseg.io import read_image
from medseg.models.loading import describe_model
from medseg.qc.modality import declared_modality, guess_modality, input_modality
from medseg.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
HEAD = ROOT / "sample_data" / "real_mri" / "itk_t1_head.nii.gz"
REAL_CT = ROOT / "sample_data" / "real_ct" / "lung2_upper_abdomen.nii.gz"
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"
PHANTOM = ROOT / "sample_data" / "Dataset002_AbdomenCT" / "imagesTs" / "abdomen_101_0000.nii.gz"


def test_bundled_models_declare_their_modality(capsys):
    registry = load_registry()
    assert describe_model("brain_tissue", registry).modality == "MR"
    assert describe_model("abdomen_ct", registry).modality == "CT"
    assert main(["info", "brain_tissue"]) == 0
    assert "  input        MR" in capsys.readouterr().out


def test_input_modality_from_dicom_or_intensities():
    assert guess_modality(read_image(HEAD)).modality == "MR"
    ct = guess_modality(read_image(REAL_CT))
    assert ct.modality == "CT" and "Hounsfield" in ct.reason
    assert guess_modality(read_image(PHANTOM)).modality == "CT"
    assert declared_modality(SERIES) == "CT"
    assert declared_modality(HEAD) is None
    found = input_modality(read_image(SERIES), declared_modality(SERIES))
    assert found.declared and found.describe() == "CT (declared in its DICOM header)"


@pytest.mark.parametrize(("source", "model", "says"), [
    (HEAD, "abdomen_ct", "model AbdomenCT is made for CT images, but the input is MR "
                         "(intensities 0..187"),
    (SERIES, "brain_tissue", "model BrainTissue is made for MR images, but the input is CT "
                             "(declared in its DICOM header)"),
])
def test_a_model_of_another_modality_is_a_qc_warning(tmp_path, capsys, source, model, says):
    assert main(["segment", str(source), "-m", model, "-o", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "qc=warn" in out
    manifest = json.loads(next(tmp_path.glob("*_manifest.json")).read_text())
    assert manifest["result"]["qc"] == "warn"
    reasons = " ".join(manifest["result"]["qc_reasons"])
    assert says in reasons, reasons


def test_the_right_modality_is_not_flagged(tmp_path, capsys):
    assert main(["segment", str(PHANTOM), "-m", "abdomen_ct", "-o", str(tmp_path),
                 "--quiet"]) == 0
    manifest = json.loads(next(tmp_path.glob("*_manifest.json")).read_text())
    assert "modality" in manifest["result"]["qc_checked"]
    assert not any("is made for" in r for r in manifest["result"]["qc_reasons"])


def test_dicom_seg_on_nifti_input_is_said_and_not_claimed(tmp_path, capsys):
    """``--dicom-seg`` on a NIfTI input: a warning naming the file, and the manifest does not
    claim a SEG (issue 25, point 9)."""
    assert main(["segment", str(PHANTOM), "-m", "abdomen_ct", "--dicom-seg", "-o",
                 str(tmp_path), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"{PHANTOM}: not a DICOM series, so no DICOM SEG" in err
    manifest = json.loads(next(tmp_path.glob("*_manifest.json")).read_text())
    assert manifest["settings"]["dicom_seg"] is False
    assert not list(tmp_path.glob("*.dcm"))
