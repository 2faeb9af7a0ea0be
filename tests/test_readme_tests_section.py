"""Issue 25: README says how long the test suite takes and when its browser and PACS tests
skip, in the words the skipping code uses (so the two cannot drift apart)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.pacs_server import PLUGIN
from tests.test_browser import CHROMEDRIVER, CHROMIUM

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _tests_paragraph() -> str:
    start = README.index("Run the tests")
    return " ".join(README[start:start + 1500].split())


def test_readme_gives_the_suite_time_and_the_browser_skip_conditions():
    text = _tests_paragraph()
    assert re.search(r"about 20 minutes on 2 cores", text)
    # the browser tests skip without exactly what tests/test_browser.py requires
    assert f"`{CHROMIUM}`" in text and f"`{CHROMEDRIVER}`" in text and "`selenium`" in text
    assert "`-m browser`" in text and 'not slow and not browser' in text
    # the PACS tests skip without Debian's orthanc and its DICOMweb plugin
    assert "orthanc-dicomweb" in text and PLUGIN.name == "libOrthancDicomWeb.so"
    assert "lists each skip with its reason (`-ra`)" in text
