"""The Models page's Pull section, driven with ``streamlit.testing.v1.AppTest`` against the
release server on 127.0.0.1: what can be pulled with its state, a pull that installs
``totalseg:total_fast``, and a failed pull shown as one line (no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from medseg.io import checksum_record as record
from medseg_ui.text import plain
from tests import test_models_pull as pulls
from tests.test_models_pull import R297, R298, same_tree

#: the release server and empty homes of the CLI tests
env, server, sources = pulls.env, pulls.server, pulls.sources

APP = Path(__file__).resolve().parents[1] / "app"


def _page() -> AppTest:
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/3_Models_and_plugins.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _offers(at: AppTest) -> dict[str, dict]:
    """The pull table (AppTest does not expose dataframe keys: found by its columns)."""
    frame = next(d.value for d in at.dataframe
                 if {"model", "state", "licence"} <= set(d.value.columns))
    return {row["model"]: row for row in frame.to_dict("records")}


def test_models_page_pulls_with_state_and_licence(env, sources):
    at = _page()
    rows = _offers(at)
    assert rows["totalseg:total_fast"]["state"] == "missing"
    assert rows["totalseg:total_fast"]["licence"] == "Apache-2.0"
    assert rows["totalseg:total_fast"]["classes"] == 117
    assert rows["totalseg:tissue_types"]["state"] == "licence key needed"
    assert "totalseg:tissue_types" not in at.selectbox(key="pull_pick").options
    at.selectbox(key="pull_pick").set_value("totalseg:total_fast").run()
    assert any("Apache" in m.value for m in at.markdown)
    at.button(key="pull_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert [s.value for s in at.success] == [
        plain("totalseg:total_fast is ready: use it with -m totalseg:total_fast")]
    assert _offers(at)["totalseg:total_fast"]["state"] == "present"
    for release in (R297, R298):
        folder = env["weights"] / release.folder
        assert same_tree(sources[release.folder][0], folder) and record.verify(folder).ok
    at.button(key="pull_size").click().run()
    assert [i.value for i in at.info if "download" in i.value.lower()] == [
        "Nothing left to download."]


def test_a_failed_pull_is_one_line_on_the_page(env):
    at = _page()
    at.selectbox(key="pull_pick").set_value("totalseg:total_mr_fast").run()
    at.button(key="pull_button").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "not found on the server" in errors[0]
    assert "\n" not in errors[0] and "Traceback" not in errors[0]
    assert _offers(at)["totalseg:total_mr_fast"]["state"] == "missing"
