"""Take the README and docs/ui.md screenshots of every page of the web app, doing real work.

    python docs/make_screenshots.py [--out docs/screenshots] [--no-pacs]

Rerun it whenever the UI changes. It starts the app and headless Chromium as the browser tests
do (system ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``, nothing downloaded; WebGL on
SwiftShader for the NiiVue viewer) and, with the bundled models:

* **Segment**: uploads the real T1 head (``sample_data/real_mri/itk_t1_head.nii.gz``); the MR
  model ``brain_tissue`` is suggested by the input's modality; runs it; the NiiVue viewer and
  the volumes with their QC remarks.
* **Evaluate**: scores that mask against the head's brain outline with the Labels box set to
  ``brain=1,2,3`` (Dice 0.961, README's figure).
* **PACS** (needs Debian's ``orthanc`` and ``orthanc-dicomweb``; ``--no-pacs`` skips it): a
  local Orthanc holding the bundled DICOM CT series; lists it, segments it with
  ``abdomen_ct``, pushes the SEG and shows the series list marking the segmented series.
* **Segment, prompt mode** (when a promptable model, ``click3d``, is installed): the bundled
  CT phantom ``abdomen_101``, one click in the liver on the middle axial slice (at the centre
  of the reference liver there), the answer added as the class "liver".
* **Models and plugins** (``models.png``: components, models with their limitations and
  preprocessing; ``models_pull.png``: the Pull section, below them) and the start page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402

import tests.test_browser as tb  # noqa: E402  (the shared Selenium + server helpers)
from tests.test_viewer_browser import _driver  # noqa: E402  (Chromium with software WebGL)

HEAD = ROOT / "sample_data" / "real_mri" / "itk_t1_head.nii.gz"
OUTLINE = ROOT / "sample_data" / "real_mri" / "itk_t1_brain_mask.nii.gz"
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"
ABDOMEN = ROOT / "sample_data" / "Dataset002_AbdomenCT"


def fit_window(driver, width: int = 1400) -> None:
    """Make the window as tall as the page's content so one screenshot holds it all."""
    height = driver.execute_script(
        "const m = document.querySelector('[data-testid=\"stMain\"]') || document.body;"
        "const c = m.querySelector('[data-testid=\"stMainBlockContainer\"]') || m;"
        "return Math.max(c.scrollHeight + 120, 700);")
    driver.set_window_size(width, min(int(height), 4000))
    time.sleep(1.5)


def nav(driver, slug: str) -> None:
    """Go to a page through the sidebar (a page load would start a new session)."""
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 120).until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, f"[data-testid='stSidebarNav'] a[href$='/{slug}']"))).click()
    tb.wait_until_idle(driver)


def shoot(driver, path: Path) -> None:
    tb.wait_until_idle(driver)
    fit_window(driver)
    driver.save_screenshot(str(path))
    print(f"wrote {path}")


def type_into(driver, label: str, text: str) -> None:
    """Type into the text box with this label and press Enter."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    box = WebDriverWait(driver, 180).until(lambda d: d.find_element(
        By.XPATH, f"//input[@aria-label and contains(@aria-label, '{label}')]"))
    box.clear()
    box.send_keys(text, Keys.ENTER)
    tb.wait_until_idle(driver)


def choose(driver, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox with this label."""
    from selenium.webdriver.support.ui import WebDriverWait

    box = WebDriverWait(driver, 180).until(lambda d: d.find_element(
        By.XPATH, f"//input[@aria-label and contains(@aria-label, '{label}')]"))
    box.click()
    box.send_keys(option)
    WebDriverWait(driver, 120).until(lambda d: d.find_element(
        By.XPATH, f"//*[@role='option'][contains(., '{option}')]")).click()
    tb.wait_until_idle(driver)


def segment_and_evaluate(driver, out: Path) -> None:
    nav(driver, "Segment")
    tb.wait_for_text(driver, "Upload an image or load a sample", 180)
    tb.file_input(driver).send_keys(str(HEAD))
    tb.wait_for_text(driver, "Run segmentation", 180)
    tb.click_button(driver, "Run segmentation")
    tb.wait_for_text(driver, "Volumes (", 300)
    time.sleep(4)  # the viewer draws
    shoot(driver, out / "segment.png")

    nav(driver, "Evaluate")
    tb.wait_for_text(driver, "This case", 180)
    type_into(driver, "Labels (optional)", "brain=1,2,3")
    driver.find_elements(By.CSS_SELECTOR,
                         "[data-testid='stFileUploader'] input[type='file']")[0].send_keys(
        str(OUTLINE))
    tb.click_button(driver, "Score against the uploaded reference")
    tb.wait_for_text(driver, "Scores against", 120)
    time.sleep(2)  # the chart
    shoot(driver, out / "evaluate.png")


def prompts(driver, out: Path, model: str = "click3d") -> None:
    """The prompt mode: one click in the liver of the CT phantom ``abdomen_101``, at its
    centre (the protocol's first click), on the axial slice through it."""
    import nibabel as nib
    import numpy as np

    sys.path.insert(0, str(ROOT / "app"))
    from medseg.io import read_image
    from medseg.prompts.simulate import first_click
    from medseg_ui.prompt_coords import SliceGeometry
    from tests.test_prompt_browser import _choose, _press

    image = read_image(ABDOMEN / "imagesTs" / "abdomen_101_0000.nii.gz")
    liver = np.asarray(nib.load(str(ABDOMEN / "labelsTs" / "abdomen_101.nii.gz")).dataobj) == 1
    n = SliceGeometry.of(image, "Axial", 0).n_slices
    click = first_click(liver, image.spacing).position
    # the axial slice through the click (the page starts on the middle one)
    number = next(s for s in range(n) if SliceGeometry.of(image, "Axial", s).pixel(click)[2]
                  == 0)
    where = SliceGeometry.of(image, "Axial", number)
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    nav(driver, "Segment")
    WebDriverWait(driver, 120).until(EC.element_to_be_clickable(
        (By.XPATH, "//label[.//*[normalize-space(text())='Bundled sample']]"))).click()
    tb.wait_for_text(driver, "Load sample", 120)
    choose(driver, "Sample", "AbdomenCT / abdomen_101")
    tb.click_button(driver, "Load sample")
    tb.wait_until_idle(driver)
    _choose(driver, "Model", model)
    tb.wait_for_text(driver, "Click on the structure to add a point", 120)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    thumb = driver.find_element(By.XPATH, "//input[@type='range'][@aria-label='Axial slice']")
    driver.execute_script("arguments[0].focus();", thumb)  # a visually hidden range input
    steps = number - (n // 2)
    ActionChains(driver).send_keys(
        *([Keys.ARROW_RIGHT if steps > 0 else Keys.ARROW_LEFT] * abs(steps))).perform()
    WebDriverWait(driver, 120).until(lambda d: d.find_element(
        By.XPATH, "//input[@type='range'][@aria-label='Axial slice']").get_attribute("value")
        == str(number + 1))
    tb.wait_until_idle(driver)
    _press(driver, where, click)
    tb.wait_for_text(driver, "mask ", 120)
    name = driver.find_element(By.XPATH, "//input[@aria-label='Name of the result']")
    name.send_keys(Keys.CONTROL, "a")  # clear() does not reach Streamlit's own value
    name.send_keys("liver", Keys.ENTER)
    tb.wait_until_idle(driver)
    time.sleep(2)
    shoot(driver, out / "prompts.png")


def pacs(driver, out: Path, work: Path) -> None:
    import pydicom
    from pydicom.uid import generate_uid

    from tests.pacs_server import orthanc_available, running_orthanc

    if not orthanc_available():
        print("no Orthanc (apt-get install orthanc orthanc-dicomweb): PACS page skipped")
        return
    study, series = generate_uid(), generate_uid()
    files = []
    for i, f in enumerate(sorted(SERIES.iterdir())):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyDescription, ds.SeriesDescription = "CT abdomen phantom", "AX 5mm"
        files.append(work / f"{i:03d}.dcm")
        ds.save_as(files[-1])
    with running_orthanc(work / "orthanc") as server:
        server.upload(files)
        nav(driver, "PACS")
        choose(driver, "Model", "abdomen_ct")
        type_into(driver, "DICOMweb URL", server.dicomweb)
        tb.click_button(driver, "List studies")
        tb.wait_for_text(driver, "Series", 180)
        tb.click_button(driver, "Segment series")
        tb.wait_for_text(driver, "Send back", 300)
        tb.click_button(driver, "Push SEG to the server")
        tb.wait_for_text(driver, "SEG stored on the server", 120)
        time.sleep(3)
        shoot(driver, out / "pacs.png")


def models(driver, out: Path) -> None:
    """The Models page: the components and the models with their limitations
    (``models.png``), then the Pull section on its own (``models_pull.png``): the whole page
    is taller than one screenshot can be."""
    from selenium.webdriver.support.ui import WebDriverWait

    nav(driver, "Models_and_plugins")
    tb.wait_for_text(driver, "Limitations", 180)
    tb.wait_for_text(driver, "Pull models", 180)
    WebDriverWait(driver, 180).until(lambda d: d.find_elements(
        By.XPATH, "//*[normalize-space(text())='Model to pull']"))
    time.sleep(2)  # the tables draw
    shoot(driver, out / "models.png")
    driver.set_window_size(1400, 1100)
    time.sleep(1)
    driver.execute_script(
        "const h = [...document.querySelectorAll('h2')].find("
        "e => e.textContent.trim().startsWith('Pull models'));"
        "h.scrollIntoView({block: 'start'});")
    time.sleep(1.5)
    driver.save_screenshot(str(out / "models_pull.png"))
    print(f"wrote {out / 'models_pull.png'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--no-pacs", action="store_true", help="skip the PACS page")
    parser.add_argument("--prompt-model", default=None,
                        help="the promptable model of the prompt mode shot (default: click3d "
                             "when installed)")
    parser.add_argument("--only-prompts", action="store_true",
                        help="take only the prompt mode shot")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medseg-shots-") as tmp:
        tmp = Path(tmp)
        driver = _driver(tmp / "profile")
        try:
            with tb.running_app(None, tmp / "streamlit.log") as url:
                driver.set_window_size(1400, 900)
                driver.get(url)
                if args.only_prompts:
                    tb.wait_for_text(driver, "Models available", 480)
                    prompts(driver, args.out, args.prompt_model or "click3d")
                    return 0
                tb.wait_for_text(driver, "Models available", 480)
                shoot(driver, args.out / "home.png")
                segment_and_evaluate(driver, args.out)
                if args.prompt_model or (ROOT / "sample_data" / "models" / "click3d").is_dir():
                    prompts(driver, args.out, args.prompt_model or "click3d")
                if not args.no_pacs:
                    pacs(driver, args.out, tmp)
                models(driver, args.out)
        finally:
            driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
