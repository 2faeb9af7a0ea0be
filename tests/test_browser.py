"""End to end in a real headless Chromium: start the app, upload a NIfTI, segment, read the page.

Needs ``/usr/bin/chromium`` + ``/usr/bin/chromedriver`` (Debian packages ``chromium`` and
``chromium-driver``) and ``selenium``; skipped cleanly otherwise. Nothing is downloaded: the
driver is given explicitly, so Selenium Manager never runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP_MAIN = ROOT / "app" / "Home.py"
SAMPLE = ROOT / "sample_data" / "Dataset001_BrainTissue" / "imagesTs" / "brain_100_0000.nii.gz"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1400,1800")

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_demo_bundle(root: Path) -> Path:
    """A brain-tissue bundle with seeded, untrained weights (the page, not the model, is
    under test)."""
    import torch

    from medseg.models.medseg_bundle.bundle import save_bundle
    from medseg.registry import load_registry

    params = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}
    torch.manual_seed(0)
    net = load_registry().architectures.get("unet").factory(
        spatial_dims=3, in_channels=1, out_channels=4, **params)
    save_bundle(root / "brain_tissue", {
        "name": "BrainTissue", "architecture": {"name": "unet", "params": params},
        "spatial_dims": 3, "in_channels": 1,
        "labels": {"background": 0, "white_matter": 1, "grey_matter": 2, "csf": 3},
        "patch_size": [32, 32, 32],
        "preprocessing": {"target_spacing": [3.0, 3.0, 3.0], "intensity": {"scheme": "zscore"},
                          "orientation": "RAS"},
        "inference": {"overlap": 0.25, "postprocessors": []},
        "training": {},
    }, net.state_dict())
    return root


@contextlib.contextmanager
def running_app(models_dir: Path | None, log: Path):
    """``streamlit run`` on 127.0.0.1 with a free port; yields the base URL."""
    port = free_port()
    env = dict(os.environ)
    if models_dir is not None:
        env["MEDSEG_MODELS_DIR"] = str(models_dir)
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_MAIN),
           "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--client.showErrorDetails", "none", "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        # started from the repository root, as README's command starts it
        proc = subprocess.Popen(cmd, cwd=APP_MAIN.parents[1], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def chromium(profile: Path):
    """Headless Chromium through the system chromedriver (no downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, text: str, timeout: float = 120) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        EC.text_to_be_present_in_element((By.TAG_NAME, "body"), text))


def click_button(driver, label: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    button = WebDriverWait(driver, timeout).until(EC.element_to_be_clickable(
        (By.XPATH, f"//button[.//*[normalize-space(text())='{label}'] or "
                   f"normalize-space(text())='{label}']")))
    button.click()


def file_input(driver, timeout: float = 60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "[data-testid='stFileUploader'] input[type='file']")))


def wait_until_idle(driver, timeout: float = 120) -> None:
    """Until Streamlit's 'running' indicator is gone."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    time.sleep(0.5)
    WebDriverWait(driver, timeout).until(lambda d: not d.find_elements(
        By.CSS_SELECTOR, "[data-testid='stStatusWidget'] [data-testid='stStatusWidgetRunningIcon'],"
                         "[data-testid='stStatusWidgetRunningManIcon']"))


def require_browser() -> None:
    if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver "
                    "(apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("needs selenium (pip install selenium)")
    if shutil.which("streamlit") is None:
        with contextlib.suppress(ImportError):
            import streamlit  # noqa: F401
            return
        pytest.skip("needs streamlit (pip install 'medseg[app]')")


def test_upload_segment_and_read_volumes(tmp_path):
    require_browser()
    from selenium.webdriver.common.by import By

    models = write_demo_bundle(tmp_path / "models")
    with running_app(models, tmp_path / "streamlit.log") as url, \
            chromium(tmp_path / "profile") as driver:
        driver.get(f"{url}/Segment")
        wait_for_text(driver, "Upload an image or load a sample", 60)
        file_input(driver).send_keys(str(SAMPLE))
        wait_for_text(driver, "brain_100_0000.nii.gz", 60)
        wait_for_text(driver, "Run segmentation", 60)
        click_button(driver, "Run segmentation")
        wait_for_text(driver, "Volumes (brain_tissue)", 180)
        wait_until_idle(driver)
        # the static slices (NiiVue, the default viewer, is tested in test_viewer_browser.py)
        driver.find_element(By.XPATH, "//label[.//*[normalize-space(text())="
                                      "'Slices (static images)']]").click()
        from selenium.webdriver.support.ui import WebDriverWait

        images = WebDriverWait(driver, 60).until(lambda d: (lambda found: found if len(
            found) >= 3 else None)(d.find_elements(By.CSS_SELECTOR,
                                                   "[data-testid='stImage'] img")))
        assert len(images) >= 3  # axial, coronal, sagittal
        rows = {}
        for tr in driver.find_elements(By.CSS_SELECTOR, "[data-testid='stTable'] tbody tr"):
            cells = [c.text.strip() for c in tr.find_elements(By.CSS_SELECTOR, "th, td")]
            if cells[0] != "total (all classes)":
                rows[cells[0]] = cells
        driver.save_screenshot(str(tmp_path / "segment.png"))
        assert (tmp_path / "segment.png").stat().st_size > 10_000
        assert set(rows) == {"white_matter", "grey_matter", "csf"}, rows
        volumes = {name: float(cells[-2]) for name, cells in rows.items()}  # then qc
        assert sum(volumes.values()) > 0 and min(volumes.values()) >= 0
        # the legend lists every class, none struck through (all shown)
        legend = driver.find_elements(By.XPATH, "//span[normalize-space(text())='grey_matter']")
        assert legend and "line-through" not in legend[0].get_attribute("style")
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Traceback" not in body
