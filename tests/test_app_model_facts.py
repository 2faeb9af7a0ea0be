"""Issue 25: the Models page shows each model's limitations and its preprocessing as a readable
table; it used to show no limitations and the preprocessing as raw JSON (``st.json``)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from medseg.models.base import ModelInfo
from medseg_ui import model_facts

APP = Path(__file__).resolve().parents[1] / "app"


def _frames(at):
    return [d.value for d in at.dataframe]


def test_models_page_shows_limitations_and_readable_preprocessing():
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/3_Models_and_plugins.py").run()
    assert not at.exception and not at.error
    # no raw JSON any more: neither st.json nor a code block holding the config
    assert not at.json
    assert not [c for c in at.code if "target_spacing" in c.value or '"scheme"' in c.value]
    # the preprocessing as rows: the bundled brain model resamples to 2 x 2 x 2.15 mm and
    # maps percentiles (its config.json)
    tables = [f for f in _frames(at) if list(f.columns) == ["setting", "value"]]
    pre = {}
    for frame in tables:
        pre.update(dict(zip(frame["setting"], frame["value"], strict=True)))
    assert pre["resampled to (mm)"] == "2 × 2 × 2.15"
    assert pre["intensity"].startswith("percentile: the 0.5th and 99.5th percentiles")
    assert pre["reoriented to"] == "RAS"
    # limitations, one list per model, from what each model records
    text = "\n".join(m.value for m in at.markdown if m.value.startswith("**Limitations**"))
    assert text.count("**Limitations**") >= 2
    plain = text.replace("\\", "")
    assert "Made for MR images only" in plain and "Made for CT images only" in plain
    assert "Trained on 10 cases (label maps; the images were synthesised" in plain
    assert "Weakest class: csf (test Dice 0.62" in plain
    assert "white_matter 532.464–696.84 mL" in plain


def test_limitations_of_a_model_that_records_little():
    info = ModelInfo(name="x", format="nnunet_v2", labels={"background": 0, "liver": 1},
                     in_channels=2, channel_names=("T1", "T2"),
                     details={"licence": "CC BY 4.0"})
    said = model_facts.limitations(info, {"limitations": "Adults only."})
    assert said[0] == "Adults only."  # the bundle's own words first
    assert any(s.startswith("Declares no modality") for s in said)
    assert any("2 co-registered input channels in this order: T1, T2" in s for s in said)
    assert any(s.startswith("The model records nothing about its training data") for s in said)
    assert said[-1] == "Licence: CC BY 4.0."
    rows = model_facts.preprocessing_rows({"target_spacing": None,
                                           "intensity": {"scheme": "ct", "clip": [-100.0, 240.0],
                                                         "mean": 60.5, "std": 40.0}})
    assert rows == [{"setting": "resampled to (mm)", "value": "the input's own spacing"},
                    {"setting": "intensity", "value": "CT: clipped to [-100, 240] HU, then "
                     "minus 60.5 and divided by 40 (training foreground statistics)"}]
