"""Errors on output are input errors too: an existing file where a folder should be, a
read-only file system, a full disk, a folder given as an output file, and an unreadable input
each give one line `medseg: error: PATH: problem` with status 2 (never an internal error), and
a batch still reports its cases. The full and read-only file systems are real (a private mount
namespace with a tiny tmpfs); the unreadable file is read by a root without the capability to
bypass file permissions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medseg.cli import main
from tests.test_batch_resilience import write_tiny_bundle

ROOT = Path(__file__).resolve().parent.parent
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"
IMAGE = ROOT / "sample_data" / "Dataset001_BrainTissue" / "imagesTs" / "brain_100_0000.nii.gz"
TIMEOUT = 300

root_tools = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"),
    reason="needs root with unshare/setpriv (mount namespaces, capability bounding set)")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("medseg:")]
    assert lines, err
    assert not any("internal error" in line or "Traceback" in line for line in lines), err
    return lines[0]


def test_output_folder_that_is_a_file(bundle, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("I am a file")
    code = main(["segment", str(IMAGE), "-o", str(out), "-m", str(bundle), "--quiet"])
    assert code == 2
    assert _one_error_line(capsys.readouterr().err) == \
        f"medseg: error: {out}: already exists and is not a folder"


def test_convert_to_a_folder(tmp_path, capsys):
    target = tmp_path / "a_folder.nii.gz"
    target.mkdir()
    assert main(["convert", str(IMAGE), str(target)]) == 2
    assert _one_error_line(capsys.readouterr().err) == \
        f"medseg: error: {target}: is a folder, not a file"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def _in_namespace(script: str, mount: Path, options: str) -> subprocess.CompletedProcess:
    """Run ``script`` (bash) with a private tmpfs mounted at ``mount``."""
    mount.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        ["unshare", "-m", "bash", "-c",
         f"mount -t tmpfs -o {options} tmpfs {mount} && {script}"],
        capture_output=True, text=True, timeout=TIMEOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"})


@root_tools
def test_full_disk_is_one_line_and_the_batch_goes_on(bundle, tmp_path):
    out = tmp_path / "full"
    cmd = (f"{sys.executable} -m medseg.cli segment {SERIES} {IMAGE} -o {out} -m {bundle} "
           "--quiet --device cpu")
    run = _in_namespace(cmd, out, "size=24k")
    assert run.returncode == 2, run.stderr  # nothing could be written
    line = _one_error_line(run.stderr)
    assert line.startswith(f"medseg: error: {out}/") and "no space left on the device" in line
    assert "0 of 2 cases done, 2 failed" in run.stdout


@root_tools
def test_read_only_output_folder(bundle, tmp_path):
    out = tmp_path / "ro"
    cmd = (f"{sys.executable} -m medseg.cli convert {IMAGE} {out}/x.nii.gz")
    run = _in_namespace(cmd, out, "ro,size=1m")
    assert run.returncode == 2
    assert _one_error_line(run.stderr) == f"medseg: error: {out}/x.nii.gz: read-only file system"


@root_tools
def test_unreadable_input_says_permission_denied(tmp_path):
    locked = tmp_path / "locked.nii.gz"
    shutil.copy(IMAGE, locked)
    locked.chmod(0)
    run = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
         "medseg.cli", "info", str(locked)], capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 2
    assert _one_error_line(run.stderr) == f"medseg: error: {locked}: permission denied"
