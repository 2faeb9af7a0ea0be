"""The PACS page in a real headless Chromium against a real Orthanc: choose the bundled CT
model in the sidebar (the page has no default model since issue 25), list the studies, segment
the CT series, see the tri-planar slices and volumes, push the SEG with one button, and find it
on the server with QIDO.

Skipped cleanly without Chromium/chromedriver/selenium/streamlit (as tests/test_browser.py) or
without Debian's orthanc + orthanc-dicomweb.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from medseg.io.names import series_case_name
from medseg.pacs.client import Server, open_client
from tests.pacs_server import orthanc_available, running_orthanc
from tests.test_browser import (
    chromium,
    click_button,
    require_browser,
    running_app,
    wait_for_text,
    wait_until_idle,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"


def choose_model(driver, name: str) -> None:
    """Pick ``name`` in the sidebar's Model selectbox (typed, then its option clicked)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = WebDriverWait(driver, 60).until(lambda d: d.find_element(
        By.CSS_SELECTOR, "[data-testid='stSidebar'] input[aria-label*='Model']"))
    box.click()
    box.send_keys(name)
    WebDriverWait(driver, 30).until(lambda d: d.find_element(
        By.XPATH, f"//*[@role='option'][contains(., '{name}')]")).click()
    wait_until_idle(driver)
    WebDriverWait(driver, 30).until(lambda d: "CT" in d.find_element(
        By.CSS_SELECTOR, "[data-testid='stSidebar']").text)  # the caption: format, classes, CT


def test_pacs_page_lists_segments_views_and_pushes(tmp_path, monkeypatch):
    require_browser()
    if not orthanc_available():
        pytest.skip("needs Debian's orthanc and orthanc-dicomweb")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    first = pydicom.dcmread(next(SERIES.iterdir()), stop_before_pixels=True)
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    with running_orthanc(tmp_path / "orthanc") as pacs:
        pacs.upload(sorted(SERIES.iterdir()))
        monkeypatch.setenv("MEDSEG_DICOMWEB_URL", pacs.dicomweb)  # the page's default server
        with running_app(None, tmp_path / "streamlit.log") as url, \
                chromium(tmp_path / "profile") as driver:
            driver.get(f"{url}/PACS")
            wait_for_text(driver, "Enter the server's DICOMweb URL", 60)
            choose_model(driver, "abdomen_ct")  # no default model: a CT model, chosen
            click_button(driver, "List studies")
            wait_for_text(driver, "Series", 60)
            wait_until_idle(driver)
            body = driver.find_element(By.TAG_NAME, "body").text
            assert f"Study {study}" in body and "PHANTOM" not in body  # no patient columns
            # the studies and series tables (the grids render after the page's text)
            WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(
                By.CSS_SELECTOR, "[data-testid='stDataFrame']")) == 2)
            # the case name its files get: readable, not the 64-character UID
            wait_for_text(driver, f"files named {series_case_name(series, '20240101', 'CT', '1')}",
                          60)
            click_button(driver, "Segment series")
            wait_for_text(driver, "Volumes (abdomen_ct)", 240)
            wait_until_idle(driver)
            # axial, coronal, sagittal as static slices (NiiVue, the default viewer, has its
            # own browser test: tests/test_viewer_browser.py)
            driver.find_element(By.XPATH, "//label[.//*[normalize-space(text())="
                                          "'Slices (static images)']]").click()
            WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(
                By.CSS_SELECTOR, "[data-testid='stImage'] img")) >= 3)
            rows = [tr.text for tr in driver.find_elements(
                By.CSS_SELECTOR, "[data-testid='stTable'] tbody tr")]
            assert any(r.startswith("liver") for r in rows), rows
            click_button(driver, "Push SEG to the server")
            wait_for_text(driver, "SEG stored on the server", 120)
            wait_until_idle(driver)
            driver.save_screenshot(str(tmp_path / "pacs.png"))
            body = driver.find_element(By.TAG_NAME, "body").text
            assert "Traceback" not in body
        client = open_client(Server(pacs.dicomweb))
        segs = client.search_for_series(study, search_filters={"Modality": "SEG"})
        assert len(segs) == 1
        sop = client.search_for_instances(study, segs[0]["0020000E"]["Value"][0])
        assert len(sop) == 1 and sop[0]["00080018"]["Value"][0] in body
    assert (tmp_path / "pacs.png").stat().st_size > 10_000
