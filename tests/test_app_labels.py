"""The Evaluate page scores the real head against its brain outline as README does (issue 25,
point 2): without labels it warns, before any score, that the reference has fewer labels;
with ``brain=1,2,3`` in the Labels box it gives Dice 0.961. The semantic mIoU is labelled as
including the background. The Segment page's mask download carries the class names (the
cohort is then named by them) and is named as the CLI names it; a zip holding a folder is
accepted as a cohort."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from medseg.io.nifti import nifti_label_names

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
HEAD = ROOT / "sample_data" / "real_mri" / "itk_t1_head.nii.gz"
OUTLINE = ROOT / "sample_data" / "real_mri" / "itk_t1_brain_mask.nii.gz"


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _dice_table(at: AppTest):
    return next(d.value for d in at.dataframe if "dice" in d.value.columns
                and "hd95 (mm)" in d.value.columns)


def test_real_head_against_its_outline_with_merged_labels(tmp_path):
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/1_Segment.py").run()
    at.selectbox(key="model").set_value("brain_tissue")
    at.file_uploader(key="upload").set_value(("itk_t1_head.nii.gz", HEAD.read_bytes(),
                                              "application/gzip"))
    at.run()
    at.button(key="run").click().run()
    _ok(at)
    assert any(t.value.startswith("Files: itk_t1_head.nii.gz ") for t in at.text)
    mask = tmp_path / "mask.nii.gz"
    mask.write_bytes(at.session_state["mask_bytes"])
    assert nifti_label_names(mask) == {0: "background", 1: "white_matter", 2: "grey_matter",
                                       3: "csf"}

    at.switch_page("pages/2_Evaluate.py").run()
    at.file_uploader(key="ref_upload").set_value(("outline.nii.gz", OUTLINE.read_bytes(),
                                                  "application/gzip"))
    at.run()
    at.button(key="score_upload").click().run()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "fewer labels" in warning
    assert list(_dice_table(at)["class"]) == ["white_matter", "grey_matter", "csf"]
    titles = [m.label for m in at.metric]
    assert "Semantic mIoU, background included" in titles

    at.text_input(key="eval_labels").set_value("brain=1,2,3").run()
    at.button(key="score_upload").click().run()
    _ok(at)
    assert not at.warning
    table = _dice_table(at)
    assert list(table["class"]) == ["brain"]
    assert round(float(table["dice"].iloc[0]), 3) == 0.961
    mean = next(m for m in at.metric if m.label.startswith("Mean Dice"))
    assert mean.value == "0.961"

    # a cohort from zips that hold a folder each; the classes named by the Labels box
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(OUTLINE, "masks/head.nii.gz")
    pred = io.BytesIO()
    with zipfile.ZipFile(pred, "w") as zf:
        zf.write(mask, "predictions/head.nii.gz")
    at.radio(key="cohort_mode").set_value("Upload zips of predictions and references").run()
    at.file_uploader(key="pred_zip").set_value(("p.zip", pred.getvalue(), "application/zip"))
    at.file_uploader(key="ref_zip").set_value(("r.zip", buf.getvalue(), "application/zip"))
    at.run()
    at.button(key="cohort_run").click().run()
    _ok(at)
    cohort = next(d.value for d in at.dataframe if "ci_low" in d.value.columns)
    assert list(cohort["class"]) == ["brain"]
    assert round(float(cohort["mean"].iloc[0]), 3) == 0.961
