"""The web app after an attack (issue 16): uploads left by a killed app are swept at the next
start (item 10), and hostile names render as text, never as markdown (item 6).

Driven with ``streamlit.testing.v1.AppTest``; a killed app is a real child process that made a
session folder, wrote a fake DICOM file in it and was SIGKILLed.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
BRAIN = ROOT / "sample_data" / "Dataset001_BrainTissue"
TIMEOUT = 120


from medseg_ui.session import OWNER_FILE, SessionFolder, sweep_stale_folders  # noqa: E402
from medseg_ui.text import html_text, plain  # noqa: E402
from tests.hostile import MARKDOWN_NAMES, write_named_bundle  # noqa: E402

SESSION_CHILD = (
    "import sys, tempfile, time; sys.path.insert(0, sys.argv[1]); "
    "tempfile.tempdir = sys.argv[2]; "
    "from medseg_ui.session import SessionFolder; f = SessionFolder(); "
    "(f.path / 'upload.dcm').write_bytes(b'DICM PatientName=DOE^JANE'); "
    "print(f.path, flush=True); time.sleep(600)"
)


def _session_process(root: Path) -> tuple[subprocess.Popen, Path]:
    """A child process holding a session folder under ``root`` with an uploaded file."""
    proc = subprocess.Popen([sys.executable, "-c", SESSION_CHILD, str(APP), str(root)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line, "the child made no session folder"
    return proc, Path(line)


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """The app's temporary directory, private to the test."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_home_sweeps_a_killed_apps_uploads_and_keeps_live_sessions(temp_root):
    killed, stale = _session_process(temp_root)
    _kill(killed)
    assert (stale / "upload.dcm").exists() and (stale / OWNER_FILE).exists()  # left behind
    alive, live_other = _session_process(temp_root)
    try:
        mine = SessionFolder()  # a live session of this very process
        (mine.path / "upload.dcm").write_bytes(b"DICM")
        at = AppTest.from_file(str(APP / "Home.py"), default_timeout=TIMEOUT)
        at.run()
        assert not at.exception
        assert not stale.exists(), "a killed app's uploads survived the next start"
        assert (live_other / "upload.dcm").exists(), "another live app's session was removed"
        assert (mine.path / "upload.dcm").exists(), "this app's live session was removed"
        for folder in (live_other, mine.path):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        _kill(alive)
    assert sweep_stale_folders(temp_root) == [live_other]  # gone once its process is
    mine.cleanup()


def test_sweep_leaves_other_files_and_recent_unowned_folders(temp_root):
    other = temp_root / "medseg-app-notmine.txt"
    other.write_text("a file, not a session folder")
    unowned = temp_root / "medseg-app-older"  # an older app's folder: kept while recent
    unowned.mkdir(mode=0o700)
    link = temp_root / "medseg-app-link"
    target = temp_root / "elsewhere"
    target.mkdir()
    (target / OWNER_FILE).write_text("")  # names no live process
    link.symlink_to(target)
    assert sweep_stale_folders(temp_root) == []
    assert other.exists() and unowned.exists() and target.exists()
    old = time.time() - 2 * 24 * 3600
    os.utime(unowned, (old, old))
    assert sweep_stale_folders(temp_root) == [unowned]


# ---- item 6: names render as text ----------------------------------------------------------
#: a markdown link or image, HTML, or emphasis that was not escaped
UNESCAPED = re.compile(r"(?<!\\)\]\s*\(|(?<!\\)<\s*img|(?<!\\)\*bold")
HOSTILE_MODEL = "[re-authenticate](https:host)"  # a folder name: no slashes


def _bodies(at: AppTest) -> list[str]:
    """The markdown text of every element that renders markdown (and the table cells)."""
    out = []
    for kind in ("markdown", "error", "warning", "info", "success", "caption", "subheader",
                 "header", "title"):
        out += [str(e.value) for e in getattr(at, kind)]
    out += [str(e.label) for e in at.expander]
    for table in at.table:
        frame = table.value.reset_index()
        out += [str(v) for v in frame.to_numpy().ravel()]
    return out


def _assert_shown_as_text(at: AppTest, names) -> None:
    bodies = _bodies(at)
    for body in bodies:
        assert not UNESCAPED.search(body), f"markdown survives in {body!r}"
    for name in names:
        assert any(plain(name) in b or html_text(name) in b for b in bodies), \
            f"{name!r} is not on the page as escaped text"


@pytest.fixture
def hostile_models(tmp_path, monkeypatch):
    """A models folder with a bundle named like a link whose classes are the hostile names."""
    write_named_bundle(tmp_path / "models" / HOSTILE_MODEL, MARKDOWN_NAMES)
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


def _segment_page() -> AppTest:
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/1_Segment.py").run()
    return at


@pytest.mark.parametrize("name", MARKDOWN_NAMES)
def test_upload_names_render_as_text(name, temp_root):
    at = _segment_page()
    data = (BRAIN / "imagesTs" / "brain_100_0000.nii.gz").read_bytes()
    shown = name.rsplit("/", 1)[-1] + ".nii.gz"  # the browser's base name
    at.file_uploader(key="upload").set_value((f"{name}.nii.gz", data, "application/gzip"))
    at.run()
    assert not at.exception and not at.error
    _assert_shown_as_text(at, [shown])
    at.file_uploader(key="upload").set_value((f"{name}.nii", b"not nifti", "application/gzip"))
    at.run()  # an error message that quotes the name
    assert not at.exception and len(at.error) == 1
    _assert_shown_as_text(at, [name.rsplit("/", 1)[-1] + ".nii"])


def test_model_class_and_reference_names_render_as_text(hostile_models, temp_root):
    at = _segment_page()
    assert HOSTILE_MODEL in at.selectbox(key="model").options
    at.selectbox(key="model").set_value(HOSTILE_MODEL)
    at.radio(key="source").set_value("Bundled sample").run()
    at.selectbox(key="sample_pick").set_value("BrainTissue / brain_100")
    at.button(key="load_sample").click().run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _assert_shown_as_text(at, [*MARKDOWN_NAMES, f"Volumes ({HOSTILE_MODEL})"])

    at.switch_page("pages/2_Evaluate.py").run()
    reference = (BRAIN / "labelsTs" / "brain_100.nii.gz").read_bytes()
    at.file_uploader(key="ref_upload").set_value(
        (f"{HOSTILE_MODEL}.nii.gz", reference, "application/gzip"))
    at.run()
    at.button(key="score_upload").click().run()
    assert not at.exception
    _assert_shown_as_text(at, [f"{HOSTILE_MODEL}.nii.gz", HOSTILE_MODEL])

    at.switch_page("pages/3_Models_and_plugins.py").run()
    assert not at.exception
    _assert_shown_as_text(at, [HOSTILE_MODEL])
