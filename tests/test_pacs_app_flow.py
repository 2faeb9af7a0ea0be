"""The PACS page's round trip driven with AppTest against a real Orthanc (issue 25, point 1):
"List studies" clicked twice does not crash (it raised ``KeyError 'pacs_series'``); after a
push the series list is read again, shows the SEG series and marks the source series as
segmented; the SEG is offered for download, and stays marked after a fresh listing."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from tests.pacs_server import orthanc_available, running_orthanc

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    if not orthanc_available():
        pytest.skip("needs Debian's orthanc and orthanc-dicomweb")
    work = tmp_path_factory.mktemp("orthanc_flow")
    study, series = generate_uid(), generate_uid()
    files = []
    for i, f in enumerate(sorted(SERIES.iterdir())):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        files.append(work / f"{i:03d}.dcm")
        ds.save_as(files[-1])
    with running_orthanc(work / "server") as server:
        server.upload(files)
        yield server, str(study), str(series)


def _errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error] + [str(e.value) for e in at.exception]


def _series_table(at: AppTest):
    return next(t.value for t in at.dataframe if "SeriesInstanceUID" in t.value.columns)


def test_list_twice_segment_push_and_see_the_seg(orthanc):
    server, _study, series = orthanc
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/4_PACS.py").run()
    at.selectbox(key="pacs_model").set_value("abdomen_ct").run()
    at.text_input(key="pacs_url").set_value(server.dicomweb)
    at.button(key="pacs_list").click().run()
    assert not _errors(at)
    at.button(key="pacs_list").click().run()  # the second listing crashed with a KeyError
    assert not _errors(at), _errors(at)
    table = _series_table(at)
    assert list(table["SeriesInstanceUID"]) == [series]
    assert list(table["SEG"]) == ["no"]

    at.button(key="pacs_run").click().run()
    assert not _errors(at), _errors(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download DICOM SEG"]
    seg_path = Path(at.session_state["pacs_seg_file"][1])
    seg = pydicom.dcmread(seg_path)
    assert seg.Modality == "SEG" and seg.SeriesDescription == "medseg segmentation"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series

    at.button(key="pacs_push").click().run()
    assert not _errors(at), _errors(at)
    assert [s.value for s in at.success] == ["SEG stored on the server"]
    table = _series_table(at)  # read again after the push
    assert sorted(table["Modality"]) == ["CT", "SEG"]
    marks = dict(zip(table["SeriesInstanceUID"], table["SEG"], strict=True))
    assert marks[series] == "yes (1)"
    assert "has a SEG" in at.selectbox(key="pacs_pick").options[0]

    at.button(key="pacs_list").click().run()  # and again from scratch: still marked
    assert not _errors(at), _errors(at)
    marks = dict(zip(_series_table(at)["SeriesInstanceUID"], _series_table(at)["SEG"],
                     strict=True))
    assert marks[series] == "yes (1)"
