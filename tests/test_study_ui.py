"""The Evaluate page runs a study on uploaded zips: criteria PASS/FAIL, a paired comparison
with a second model (table and plot), subgroups and volume agreement."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.study_cohorts import shifted_cohort

APP = Path(__file__).resolve().parents[1] / "app"

from medseg_ui.text import plain  # noqa: E402  (messages on the page are markdown-escaped)

SIDES = [8, 10, 12, 8]


def _zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, p.name)
    return buf.getvalue()


def _table(at, *columns):
    """The first dataframe whose columns include ``columns`` (AppTest does not expose keys)."""
    return next(d.value for d in at.dataframe if set(columns) <= set(d.value.columns))


def test_evaluate_page_study_on_uploaded_zips(tmp_path):
    folders = shifted_cohort(tmp_path, SIDES, {"A": [2] * 4, "B": [1] * 4})
    criteria = json.dumps([
        {"id": "D1", "class": 1, "metric": "dice", "statistic": "mean", "op": ">=",
         "threshold": 0.9},
    ]).encode()
    metadata = b"case,site\ncase00,north\ncase01,north\ncase02,south\ncase03,south\n"
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/2_Evaluate.py").run()
    at.radio(key="cohort_mode").set_value("Upload zips of predictions and references").run()
    at.file_uploader(key="pred_zip").set_value(("a.zip", _zip(folders["A"]), "application/zip"))
    at.file_uploader(key="ref_zip").set_value(("r.zip", _zip(folders["ref"]), "application/zip"))
    at.file_uploader(key="pred2_zip").set_value(("b.zip", _zip(folders["B"]),
                                                 "application/zip"))
    at.file_uploader(key="criteria_file").set_value(("c.json", criteria, "application/json"))
    at.file_uploader(key="metadata_file").set_value(("m.csv", metadata, "text/csv"))
    at.text_input(key="group_by").set_value("site")
    at.number_input(key="min_n").set_value(2)
    at.run()
    at.button(key="cohort_run").click().run()
    assert not at.exception, [e.message for e in at.exception]
    # model A (the first zip) has Dice (s - 2) / s: mean 0.77 < 0.9, so the criterion fails
    assert any("Acceptance criteria: FAIL (0 of 1 passed)" in e.value for e in at.error)
    crit = _table(at, "id", "result")
    assert crit["result"].tolist() == ["FAIL"] and crit["n"].tolist() == [4]
    assert crit["value"].iloc[0] == pytest.approx(np.mean([(s - 2) / s for s in SIDES]))
    comp = _table(at, "mean_diff", "p_holm")
    dice = comp[comp["metric"] == "dice"].iloc[0]
    assert dice["mean_diff"] == pytest.approx(np.mean([1 / s for s in SIDES]))
    assert dice["ci_low"] > 0 and dice["wins"] == 4
    assert at.get("html") and "<svg" in at.get("html")[0].proto.body
    sub = _table(at, "by", "group")
    north = sub[sub["group"] == "north"].iloc[0]
    assert north["n"] == 2 and north["mean"] == pytest.approx((6 / 8 + 8 / 10) / 2)
    agree = _table(at, "bias_ml", "ccc")
    assert agree["bias_ml"].iloc[0] == pytest.approx(0.0)  # shifted cubes keep their volume


def test_bad_criteria_file_is_one_line_on_the_page(tmp_path):
    folders = shifted_cohort(tmp_path, [8, 10], {"A": [1, 1]})
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/2_Evaluate.py").run()
    at.radio(key="cohort_mode").set_value("Upload zips of predictions and references").run()
    at.file_uploader(key="pred_zip").set_value(("a.zip", _zip(folders["A"]), "application/zip"))
    at.file_uploader(key="ref_zip").set_value(("r.zip", _zip(folders["ref"]), "application/zip"))
    bad = json.dumps([{"class": 1, "metric": "dise", "statistic": "mean", "op": ">=",
                       "threshold": 1}]).encode()
    at.file_uploader(key="criteria_file").set_value(("c.json", bad, "application/json"))
    at.run()
    at.button(key="cohort_run").click().run()
    assert not at.exception
    assert len(at.error) == 1 and plain("unknown metric 'dise'") in at.error[0].value
    assert "\n" not in at.error[0].value
