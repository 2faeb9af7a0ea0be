"""The NiiVue viewer in a real headless Chromium (issue 25, point 7).

A volume whose every voxel holds its own index (``i + 100 j + 10000 k``) on an LPS-stored,
anisotropic grid is uploaded to the Segment page. In the viewer's frame the mouse wheel moves
through slices with **no message to the Streamlit server** (every WebSocket send of the page
is counted); a left click sends the crosshair back, and the voxel the page reports holds
exactly the intensity NiiVue showed there, so the browser's and the server's geometry agree.
Needs Chromium + chromedriver (Debian) and selenium, else skipped; WebGL runs on SwiftShader.
"""

from __future__ import annotations

import re
import time

import nibabel as nib
import numpy as np
import pytest

from tests.test_browser import (
    CHROME_FLAGS,
    CHROMEDRIVER,
    CHROMIUM,
    file_input,
    require_browser,
    running_app,
    wait_for_text,
)

pytestmark = pytest.mark.browser
SHAPE = (40, 36, 30)
#: stored L->R and P->A (not RAS), anisotropic
AFFINE = np.array([[-1.2, 0, 0, 30.0], [0, -1.0, 0, 20.0], [0, 0, 2.5, -40.0], [0, 0, 0, 1]])
#: software WebGL2 for a headless browser without a GPU
GL_FLAGS = ("--use-angle=swiftshader", "--enable-unsafe-swiftshader")
COUNT_SENDS = """
if (!window.__sends) {
  window.__sends = 0;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) { window.__sends += 1; return send.call(this, data); };
}
window.__sends = 0;
"""


def _volume(path):
    i, j, k = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    data = (i + 100 * j + 10000 * k).astype(np.float32)
    nib.save(nib.Nifti1Image(data, AFFINE), str(path))


def _driver(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROME_FLAGS, *GL_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def _viewer_frame(driver, timeout=90):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: next(
        (f for f in d.find_elements(By.TAG_NAME, "iframe")
         if "medseg_niivue" in (f.get_attribute("title") or "")
         or "niivue" in (f.get_attribute("src") or "")), None))


def test_wheel_scrolls_in_the_browser_and_a_click_reports_the_voxel(tmp_path):
    require_browser()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    volume = tmp_path / "index.nii.gz"
    _volume(volume)
    driver = _driver(tmp_path / "profile")
    try:
        with running_app(None, tmp_path / "streamlit.log") as url:
            driver.get(f"{url}/Segment")
            wait_for_text(driver, "Upload an image or load a sample", 60)
            file_input(driver).send_keys(str(volume))
            wait_for_text(driver, "index.nii.gz", 60)
            frame = _viewer_frame(driver)
            driver.switch_to.frame(frame)
            WebDriverWait(driver, 90).until(
                lambda d: d.execute_script("return window.medsegViewerReady || "
                                           "window.medsegViewerError || null"))
            assert driver.execute_script("return window.medsegViewerError || null") is None
            canvas = driver.find_element(By.ID, "gl")
            where = driver.find_element(By.ID, "where")
            # click once so the crosshair sits inside the first tile
            ActionChains(driver).move_to_element_with_offset(canvas, -canvas.size["width"] // 4,
                                                             -canvas.size["height"] // 4
                                                             ).click().perform()
            time.sleep(1.0)
            driver.switch_to.default_content()
            wait_for_text(driver, "Clicked voxel", 60)
            time.sleep(1.0)
            driver.execute_script(COUNT_SENDS)
            driver.switch_to.frame(frame)
            before = where.text
            origin = ScrollOrigin.from_element(canvas, -canvas.size["width"] // 4,
                                               -canvas.size["height"] // 4)
            for _ in range(6):
                ActionChains(driver).scroll_from_origin(origin, 0, 120).perform()
                time.sleep(0.1)
            time.sleep(1.0)
            after = where.text
            assert after != before, (before, after)  # the slice moved in the browser
            driver.switch_to.default_content()
            assert driver.execute_script("return window.__sends") == 0  # no server round trip
            driver.switch_to.frame(frame)
            shown = driver.execute_script("return window.medsegLocation.values[0].value")
            ActionChains(driver).move_to_element_with_offset(canvas, -canvas.size["width"] // 4
                                                             + 7, -canvas.size["height"] // 4
                                                             + 5).click().perform()
            time.sleep(0.5)
            shown = driver.execute_script("return window.medsegLocation.values[0].value")
            driver.switch_to.default_content()
            WebDriverWait(driver, 30).until(lambda d: d.execute_script("return window.__sends")
                                            > 0)
            pattern = re.compile(r"Clicked voxel \((\d+), (\d+), (\d+)\) at \(([-0-9.]+), "
                                 r"([-0-9.]+), ([-0-9.]+)\) mm: intensity ([-0-9.e+]+)")

            def reported(d):
                for line in d.find_element(By.TAG_NAME, "body").text.splitlines():
                    m = pattern.search(line)
                    if m and float(m.group(7)) == pytest.approx(shown, rel=1e-3):
                        return m
                return None

            match = WebDriverWait(driver, 60).until(reported)
            i, j, k = (int(match.group(n)) for n in (1, 2, 3))
            assert all(0 <= v < n for v, n in zip((i, j, k), SHAPE, strict=True))
            # the voxel reported holds the value NiiVue showed, and lies where NiiVue put the
            # crosshair in the world by our own affine (within half a voxel per axis)
            assert i + 100 * j + 10000 * k == pytest.approx(shown, abs=0.5)
            mm = np.array([float(match.group(n)) for n in (4, 5, 6)])
            centre = (AFFINE @ np.array([i, j, k, 1.0]))[:3]
            assert np.all(np.abs(mm - centre) <= np.abs(np.diag(AFFINE)[:3]) / 2 + 0.06), \
                (mm, centre)
            driver.save_screenshot(str(tmp_path / "viewer.png"))
    finally:
        driver.quit()
