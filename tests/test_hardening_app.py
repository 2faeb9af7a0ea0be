"""The web app after an attack (issue 16): uploads left by a killed app are swept at the next
start (item 10), and hostile names render as text, never as markdown (item 6).

Driven with ``streamlit.testing.v1.AppTest``; a killed app is a real child process that made a
session folder, wrote a fake DICOM file in it and was SIGKILLed.
"""

from __future__ import annotations

import os
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
TIMEOUT = 120

if str(APP) not in sys.path:  # `streamlit run` puts the main script's folder on sys.path
    sys.path.insert(0, str(APP))

from medseg_ui.session import OWNER_FILE, SessionFolder, sweep_stale_folders  # noqa: E402

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
