"""The Segment page's prompt mode in a real headless Chromium (issue 22's "a UI browser test
that segments by clicking"): upload a volume with two balls on an LPS, anisotropic grid, pick
the promptable region-growing test model (tests/plugin_regiongrow_ui.py, offering two answers:
two tolerances), click inside one ball on the slice picture, press the second answer and the
first again, drag a box around the other ball, use the result as the segmentation and download
the NIfTI: its mask is checked against the known balls.

Skipped cleanly without Chromium/chromedriver/selenium/streamlit (as tests/test_browser.py).
"""

from __future__ import annotations

import shutil
import time

import nibabel as nib
import numpy as np
import pytest

from tests import plugin_regiongrow_ui as regiongrow
from tests.test_browser import (
    chromium,
    click_button,
    file_input,
    require_browser,
    running_app,
    wait_for_text,
    wait_until_idle,
)

pytestmark = pytest.mark.browser
#: seconds to wait for the page (generous: a loaded CI machine runs the app slowly)
WAIT = 240


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def _choose(driver, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox with this label."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = WebDriverWait(driver, WAIT).until(lambda d: d.find_element(
        By.XPATH, f"//input[@aria-label and contains(@aria-label, '{label}')]"))
    box.click()
    box.send_keys(option)
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(
        By.XPATH, f"//*[@role='option'][contains(., '{option}')]")).click()
    wait_until_idle(driver, WAIT)


def _picture(driver, timeout: float = WAIT):
    """The prompt mode's picture: (its iframe, the image inside it)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    frame = WebDriverWait(driver, timeout).until(lambda d: next(
        (f for f in d.find_elements(By.TAG_NAME, "iframe")
         if "streamlit_image_coordinates" in (f.get_attribute("title") or "")
         or "streamlit_image_coordinates" in (f.get_attribute("src") or "")), None))
    driver.switch_to.frame(frame)
    # drawn, and listening: the component sets its mouse handler when it renders
    ready = ("const i = arguments[0]; return i.complete && i.naturalWidth > 0 && "
             "i.onmousedown !== null;")
    image = WebDriverWait(driver, timeout).until(lambda d: (
        lambda el: el if d.execute_script(ready, el) else None)(d.find_element(By.ID, "image")))
    return frame, image


def _press(driver, where, ijk, *, to=None) -> None:
    """Click on voxel ``ijk`` of the picture (or press there and release on voxel ``to``)."""
    from selenium.webdriver.common.action_chains import ActionChains

    _frame, image = _picture(driver)
    width, height = image.size["width"], image.size["height"]

    def offset(voxel):  # from the image's centre, as Selenium 4 counts
        x, y = where.display_point(*where.pixel(voxel)[:2], width, height)
        return int(x - width / 2), int(y - height / 2)

    chain = ActionChains(driver).move_to_element_with_offset(image, *offset(ijk))
    if to is None:
        chain.click()
    else:
        chain.click_and_hold().move_to_element_with_offset(image, *offset(to)).release()
    chain.perform()
    driver.switch_to.default_content()
    wait_until_idle(driver, WAIT)


def test_segment_by_clicking_in_chromium(tmp_path, monkeypatch):
    require_browser()
    pytest.importorskip("streamlit_image_coordinates")  # the app extra's picture component
    from selenium.webdriver.common.by import By

    from tests.test_app_prompts import _blob_volume

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(regiongrow.__file__, plugins / "plugin_regiongrow_ui.py")
    models = tmp_path / "models"
    regiongrow.write_model(models / "grow", [0.25, 1.0])
    monkeypatch.setenv("MEDSEG_PLUGINS_DIR", str(plugins))  # the app's environment
    volume, ball, other = _blob_volume()
    path = tmp_path / "balls.nii.gz"
    nib.save(nib.Nifti1Image(volume.array[0], volume.affine), str(path))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with running_app(models, tmp_path / "streamlit.log") as url, \
            chromium(tmp_path / "profile") as driver:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                               {"behavior": "allow", "downloadPath": str(downloads)})
        try:
            _segment_by_clicking(driver, url, path, volume, ball, other, tmp_path)
        except Exception:
            driver.save_screenshot(str(tmp_path / "failure.png"))  # for the one who debugs
            (tmp_path / "failure.txt").write_text(driver.find_element(By.TAG_NAME, "body").text)
            raise
        deadline = time.monotonic() + WAIT
        while not list(downloads.glob("*.nii.gz")) and time.monotonic() < deadline:
            time.sleep(0.3)
    files = list(downloads.glob("*.nii.gz"))
    assert [f.name for f in files] == ["balls.nii.gz"]  # named after the upload
    mask = nib.load(str(files[0]))
    np.testing.assert_allclose(mask.affine, volume.affine)
    assert _dice(np.asarray(mask.dataobj) == 1, ball | other) >= 0.9
    assert (tmp_path / "prompts.png").stat().st_size > 10_000


def _answer(driver, option: str) -> None:
    """Press the Answer button ``option``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    button = WebDriverWait(driver, WAIT).until(lambda d: d.find_element(
        By.XPATH, "//div[@data-testid='stRadio'][.//*[@data-testid='stWidgetLabel']"
                  f"[contains(., 'Answer')]]//label[normalize-space(.)='{option}']"))
    button.click()
    wait_until_idle(driver, WAIT)


def _segment_by_clicking(driver, url, path, volume, ball, other, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from medseg_ui.prompt_coords import SliceGeometry

    driver.get(f"{url}/Segment")
    wait_for_text(driver, "Upload an image or load a sample", WAIT)
    file_input(driver).send_keys(str(path))
    wait_for_text(driver, "balls.nii.gz", WAIT)
    wait_until_idle(driver, WAIT)
    _choose(driver, "Model", "grow")
    wait_for_text(driver, "Click on the structure to add a point", WAIT)
    wait_until_idle(driver, WAIT)
    # the page's default: the axial slice in the middle (24 slices: slice 13, k = 12)
    where = SliceGeometry.of(volume, "Axial", 12)
    _press(driver, where, (14, 16, 12))
    wait_for_text(driver, f"mask {int(ball.sum())} voxels", WAIT)
    # the second answer (the wider tolerance), then the first again
    from medseg.prompts.types import Point, Prompts

    wide = regiongrow.region_grow(volume.array[0], Prompts((Point((14.0, 16.0, 12.0)),)), 1.0)
    assert wide.sum() > 2 * ball.sum()
    _answer(driver, "2")
    wait_for_text(driver, f"mask {int(wide.sum())} voxels", WAIT)
    _answer(driver, "1")
    wait_for_text(driver, f"mask {int(ball.sum())} voxels", WAIT)
    _press(driver, where, (25, 12, 12), to=(35, 24, 12))  # a box around the other ball
    wait_for_text(driver, f"mask {int((ball | other).sum())} voxels", WAIT)
    click_button(driver, "Use as the segmentation", WAIT)
    wait_for_text(driver, "Volumes (grow)", WAIT)
    # the volumes table: a row for the class (the page may still be drawing it)
    WebDriverWait(driver, WAIT).until(lambda d: any(
        tr.text.startswith("object") for tr in d.find_elements(
            By.CSS_SELECTOR, "[data-testid='stTable'] tr")))
    wait_until_idle(driver, WAIT)
    driver.save_screenshot(str(tmp_path / "prompts.png"))
    click_button(driver, "Download mask (NIfTI)", WAIT)
    assert "Traceback" not in driver.find_element(By.TAG_NAME, "body").text
