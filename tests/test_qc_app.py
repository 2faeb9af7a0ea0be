"""The Segment page shows a segmentation's quality flag: a warning banner with escaped reasons
for ``warn``, a caption for ``ok``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"

from medseg_ui.qc_banner import escape_markdown  # noqa: E402

#: a class name full of Markdown: emphasis, a colour directive, maths, a link
HOSTILE = "liver_*:red[x]*$x$[a](b)"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """The shipped abdomen_ct bundle as is (``ok`` on its test case), and a copy whose liver
    is renamed to a hostile name and whose record says livers are 5-6 L (``warn``)."""
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(ROOT / "sample_data" / "models" / "abdomen_ct", root / "abdomen_ct")
    odd = root / "abdomen_odd"
    shutil.copytree(root / "abdomen_ct", odd)
    config = json.loads((odd / "config.json").read_text())
    config["labels"] = {(HOSTILE if k == "liver" else k): v for k, v in config["labels"].items()}
    classes = config["training_record"]["classes"]
    classes[HOSTILE] = {**classes.pop("liver"), "min_ml": 5000.0, "max_ml": 6000.0}
    (odd / "config.json").write_text(json.dumps(config))
    old = os.environ.get("MEDSEG_MODELS_DIR")
    os.environ["MEDSEG_MODELS_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("MEDSEG_MODELS_DIR", None)
    else:
        os.environ["MEDSEG_MODELS_DIR"] = old


def _segment(model: str) -> AppTest:
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/1_Segment.py").run()
    at.selectbox(key="model").set_value(model)
    at.radio(key="source").set_value("Bundled sample").run()
    at.selectbox(key="sample_pick").set_value("AbdomenCT / abdomen_101")
    at.button(key="load_sample").click().run()
    at.button(key="run").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_warn_shows_a_banner_with_escaped_reasons(models_dir):
    at = _segment("abdomen_odd")
    banners = [w.value for w in at.warning if "Quality check" in w.value]
    assert len(banners) == 1
    text = banners[0]
    assert text.startswith("**Quality check\\: warn\\.**")
    assert escape_markdown(HOSTILE) + " 1\\,320" in text   # the reason, escaped
    assert HOSTILE not in text                              # never as raw Markdown


def test_ok_shows_a_caption_and_no_banner(models_dir):
    at = _segment("abdomen_ct")
    assert not [w for w in at.warning if "Quality check" in w.value]
    assert any(c.value == "Quality check\\: ok" for c in at.caption)


def test_escape_markdown_escapes_every_ascii_punctuation():
    text = "a*b_c:d[e](f)$g$ <h> `i` #j\nk"
    out = escape_markdown(text)
    assert out == "a\\*b\\_c\\:d\\[e\\]\\(f\\)\\$g\\$ \\<h\\> \\`i\\` \\#j k"


def test_the_page_csv_download_carries_the_flag():
    from medseg.qc import QC, Finding
    from medseg_ui import engine

    qc = QC("warn", (Finding("volume", "organ 1.0 mL, trained range 10-20 mL", "organ"),))
    rows = [{"label": 1, "name": "organ", "voxels": 10, "volume_ml": 1.0},
            {"label": 2, "name": "other", "voxels": 5, "volume_ml": 0.5}]
    assert engine.volumes_csv(rows, qc).decode().splitlines() == [
        "label,name,voxels,volume_ml,qc,qc_reasons",
        '1,organ,10,1.0,warn,"organ 1.0 mL, trained range 10-20 mL"',
        "2,other,5,0.5,warn,"]
