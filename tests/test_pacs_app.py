"""The PACS page driven with ``streamlit.testing.v1.AppTest`` against a real Orthanc: texts
from the server (descriptions, UIDs) are shown as plain text or table cells, never rendered as
markdown; patient columns are not shown; a server that refuses is one error line."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from tests.pacs_server import free_port, orthanc_available, running_orthanc

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"
HOSTILE = "**PWN** <img src=x onerror=alert(1)> [link](http://evil.example)"

from medseg_ui.text import plain  # noqa: E402  (messages on the page are markdown-escaped)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    if not orthanc_available():
        pytest.skip("needs Debian's orthanc and orthanc-dicomweb")
    work = tmp_path_factory.mktemp("orthanc_app")
    ds = pydicom.dcmread(sorted(SERIES.iterdir())[0])
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyDescription = ds.SeriesDescription = HOSTILE
    ds.save_as(work / "hostile.dcm")
    with running_orthanc(work / "server") as server:
        server.upload([work / "hostile.dcm"])
        yield server, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def _page(url: str) -> AppTest:
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/4_PACS.py").run()
    at.text_input(key="pacs_url").set_value(url)
    at.button(key="pacs_list").click().run()
    return at


def _markdown(at: AppTest) -> str:
    return " ".join(str(m.value) for m in [*at.markdown, *at.caption, *at.title,
                                            *at.subheader, *at.success, *at.info])


def test_server_texts_are_plain_and_patient_free(orthanc):
    server, study, series = orthanc
    at = _page(server.dicomweb)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "PWN" not in _markdown(at)
    studies, series_table = (t.value for t in at.dataframe)
    assert list(studies["StudyDescription"]) == [HOSTILE]
    assert "PatientName" not in studies.columns and "PatientID" not in studies.columns
    assert list(series_table["SeriesDescription"]) == [HOSTILE]
    assert HOSTILE in at.selectbox(key="pacs_study").options[0]
    assert f"Study {study}" in [t.value for t in at.text]
    # the series, and the readable name its files get (issue 25: not the 64-character UID)
    assert any(t.value.startswith(f"Series {series} · files named ") for t in at.text)
    named = next(t.value for t in at.text if t.value.startswith(f"Series {series}"))
    assert series not in named.split("files named ")[1]


def test_a_refused_connection_is_one_error_line():
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    at = _page(url)
    assert not at.exception
    assert [e.value for e in at.error] == [plain(f"{url}: listing studies: connection refused "
                                                 "(is the server running on that port?)")]
