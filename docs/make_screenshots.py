"""Take the README screenshots of every page of the web app in headless Chromium.

    python docs/make_screenshots.py [--out docs/screenshots] [--models-dir DIR]

Uses the same Selenium setup as ``tests/test_browser.py`` (system ``/usr/bin/chromium`` and
``/usr/bin/chromedriver``, nothing downloaded). Uses the bundled models when there are any,
otherwise a demo bundle with untrained weights (the overlay is then meaningless).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_browser as tb  # noqa: E402  (the shared Selenium + server helpers)
from selenium.webdriver.common.by import By  # noqa: E402


def fit_window(driver, width: int = 1400) -> None:
    """Make the window as tall as the page's content so one screenshot holds it all."""
    height = driver.execute_script(
        "const m = document.querySelector('[data-testid=\"stMain\"]') || document.body;"
        "const c = m.querySelector('[data-testid=\"stMainBlockContainer\"]') || m;"
        "return Math.max(c.scrollHeight + 120, 700);")
    driver.set_window_size(width, min(int(height), 4000))
    time.sleep(1.0)


def nav(driver, slug: str) -> None:
    """Go to a page through the sidebar (a page load would start a new session)."""
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, f"[data-testid='stSidebarNav'] a[href$='/{slug}']"))).click()
    tb.wait_until_idle(driver)


def shoot(driver, path: Path) -> None:
    tb.wait_until_idle(driver)
    fit_window(driver)
    driver.save_screenshot(str(path))
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--sample", default="BrainTissue / brain_100")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from medseg.models.medseg_bundle.bundle import list_bundles

    with tempfile.TemporaryDirectory(prefix="medseg-shots-") as tmp:
        tmp = Path(tmp)
        models = args.models_dir
        if models is None and not list_bundles():
            models = tb.write_demo_bundle(tmp / "models")
        with tb.running_app(models, tmp / "streamlit.log") as url, \
                tb.chromium(tmp / "profile") as driver:
            driver.set_window_size(1400, 900)
            driver.get(url)
            tb.wait_for_text(driver, "Models available", 60)
            shoot(driver, args.out / "home.png")

            nav(driver, "Segment")
            tb.wait_for_text(driver, "Upload an image or load a sample", 60)
            driver.find_element(By.XPATH, "//label[contains(., 'Bundled sample')]").click()
            tb.wait_for_text(driver, "Load sample", 30)
            tb.click_button(driver, "Load sample")
            tb.wait_for_text(driver, "Run segmentation", 60)
            tb.click_button(driver, "Run segmentation")
            tb.wait_for_text(driver, "Volumes (", 300)
            shoot(driver, args.out / "segment.png")

            nav(driver, "Evaluate")
            tb.click_button(driver, "Score against the bundled reference")
            tb.wait_for_text(driver, "Scores against", 120)
            tb.click_button(driver, "Evaluate cohort")
            tb.wait_for_text(driver, "Dice per class", 300)
            time.sleep(2)  # charts
            shoot(driver, args.out / "evaluate.png")

            nav(driver, "Models_and_plugins")
            tb.wait_for_text(driver, "Model bundles", 60)
            time.sleep(1)
            shoot(driver, args.out / "models.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
