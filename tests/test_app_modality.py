"""The Segment page and modality (issue 25, point 4): no model is chosen by default (it was
``abdomen_ct``, which labelled an MR brain "liver"); an MR head gets the MR model suggested;
choosing the CT model shows a mismatch banner before running and the QC banner after; a
DICOM CT series gets a DICOM SEG download."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
HEAD = ROOT / "sample_data" / "real_mri" / "itk_t1_head.nii.gz"


def _warnings(at: AppTest) -> str:
    return " ".join(str(w.value) for w in at.warning)


def test_no_default_model_then_suggested_by_modality_and_a_banner_on_mismatch():
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/1_Segment.py").run()
    assert at.selectbox(key="model").value is None
    at.file_uploader(key="upload").set_value(("head.nii.gz", HEAD.read_bytes(),
                                              "application/gzip"))
    at.run()
    assert not at.exception
    assert at.selectbox(key="model").value == "brain_tissue"  # the MR model, by modality
    assert "Modality mismatch" not in _warnings(at)
    at.selectbox(key="model").set_value("abdomen_ct").run()
    assert "Modality mismatch" in _warnings(at)
    assert "made for CT images, but the input is MR" in _warnings(at).replace("\\", "")
    at.button(key="run").click().run()
    assert not at.exception
    qc = _warnings(at).replace("\\", "")
    assert "Quality check: warn." in qc and "is made for CT images" in qc


def test_dicom_series_gets_a_dicom_seg_download(tmp_path):
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/1_Segment.py").run()
    at.radio(key="source").set_value("Bundled sample").run()
    at.selectbox(key="sample_pick").set_value("DICOM series / ct_phantom_001")
    at.button(key="load_sample").click().run()
    assert at.selectbox(key="model").value == "abdomen_ct"  # declared CT: the CT model
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download DICOM SEG" in labels
    seg = pydicom.dcmread(at.session_state["seg_dicom"][1])
    assert seg.Modality == "SEG" and seg.PatientIdentityRemoved == "YES"
    assert any(t.value.endswith("ct_phantom_001_seg.dcm") for t in at.text)
