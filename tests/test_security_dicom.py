"""A deflated DICOM bomb (issue 24, item 4): an ~800 kB file in Deflated Explicit VR Little
Endian holding 800 MB of zeros in a private OB element. pydicom inflated the whole dataset
before any check (2.0 GB for ``medseg info`` under a 64 MiB limit, 3.9 GB over WADO); now it is
refused in one line, locally and over WADO, near the memory of a baseline run on a small
normal file, while a small deflated file still reads."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medseg.errors import InputError
from medseg.io.dicom import read_dicom
from tests.dicomweb_fake import fake_dicomweb

ROOT = Path(__file__).resolve().parents[1]
SOURCE = sorted((ROOT / "sample_data" / "dicom" / "ct_phantom_001").iterdir())[0]
LIMIT = 64 * 1024**2
BOMB_ZEROS = 800_000_000


def write_deflated(path: Path, zeros: int) -> Path:
    """A real CT slice in Deflated Explicit VR Little Endian with ``zeros`` bytes of zeros in
    a private OB element after the pixel data, deflated chunk by chunk (never in memory)."""
    ds = pydicom.dcmread(SOURCE)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    body = DicomFileLike(io.BytesIO())
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    meta = DicomFileLike(io.BytesIO())
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta)
    private = (struct.pack("<HH2sH", 0x7FE1, 0x0010, b"LO", 10) + b"MEDSEGBOMB"
               + struct.pack("<HH2sHI", 0x7FE1, 0x1000, b"OB", 0, zeros))
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = bytes(1 << 22)
    with open(path, "wb") as fh:
        fh.write(b"\0" * 128 + b"DICM" + meta.parent.getvalue())
        fh.write(deflater.compress(body.parent.getvalue() + private))
        left = zeros
        while left:
            n = min(left, len(chunk))
            fh.write(deflater.compress(chunk[:n]))
            left -= n
        fh.write(deflater.flush())
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("deflated")
    bomb = write_deflated(folder / "bomb.dcm", BOMB_ZEROS)
    assert bomb.stat().st_size < 1_000_000
    return {"bomb": bomb, "small": write_deflated(folder / "small.dcm", 1000)}


def _env() -> dict[str, str]:
    return {**os.environ, "MEDSEG_MAX_MEMORY_BYTES": str(LIMIT), "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT / ".pp"), str(ROOT),
                                           os.environ.get("PYTHONPATH", "")])}


def _run(args: list[str], tmp: Path) -> tuple[int, str, str, float, int]:
    """Exit status, stdout, stderr, seconds and peak RSS (bytes) of this one Python
    subprocess (``os.wait4``: its own figure, not the largest of every child so far)."""
    start = time.perf_counter()
    with open(tmp / "out.txt", "w+") as out, open(tmp / "err.txt", "w+") as err:
        proc = subprocess.Popen([sys.executable, *args], env=_env(), stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return (os.waitstatus_to_exitcode(status), out.read(), err.read(), seconds,
                usage.ru_maxrss * 1024)


def test_a_deflate_bomb_is_refused_near_baseline_memory(files, tmp_path):
    code, out, _, _, base_rss = _run(["-m", "medseg.cli", "info", str(files["small"])],
                                     tmp_path)
    assert code == 0 and "int16" in out  # a small deflated file still reads
    code, _, err, seconds, rss = _run(["-m", "medseg.cli", "info", str(files["bomb"])],
                                      tmp_path)
    assert code == 2 and err.strip() == (
        f"medseg: error: {files['bomb']}: deflated DICOM dataset inflates to more than "
        f"{LIMIT} bytes (the smaller of MEDSEG_MAX_MEMORY_BYTES and MEDSEG_MAX_UNZIPPED_BYTES)"
        "; refused before inflating it")
    assert rss < base_rss + 100 * 1024**2, (rss, base_rss)  # was 2.0 GB
    assert seconds < 120


_DOWNLOAD = """
import resource, sys
from medseg.errors import MedsegError
from medseg.pacs.client import Server, open_client
from medseg.pacs.retrieve import download_series
server = Server(sys.argv[1])
try:
    download_series(open_client(server), server, sys.argv[2], sys.argv[3], sys.argv[4])
    print("downloaded")
except MedsegError as exc:
    print(exc)
"""


def test_a_deflate_bomb_served_over_wado_is_refused_near_baseline_memory(files, tmp_path):
    ds = pydicom.dcmread(SOURCE, stop_before_pixels=True)
    study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
    with fake_dicomweb({study: [files["small"]]}) as fake:
        code, out, err, _, base_rss = _run(["-c", _DOWNLOAD, fake.url, study, series,
                                            str(tmp_path / "small")], tmp_path)
        assert code == 0 and out.strip() == "downloaded", err[-2000:]
    with fake_dicomweb({study: [files["bomb"]]}) as fake:
        code, out, err, _, rss = _run(["-c", _DOWNLOAD, fake.url, study, series,
                                       str(tmp_path / "bomb")], tmp_path)
    assert code == 0, err[-2000:]
    assert out.strip() == (
        f"{fake.url}: downloading series {series}: instance 1: deflated DICOM dataset "
        f"inflates to more than {LIMIT} bytes (the smaller of MEDSEG_MAX_MEMORY_BYTES and "
        "MEDSEG_MAX_UNZIPPED_BYTES); refused before inflating it")
    assert rss < base_rss + 100 * 1024**2, (rss, base_rss)  # was 3.9 GB
    assert not list((tmp_path / "bomb").iterdir())


def test_a_deflated_series_within_the_limits_reads_and_one_past_them_is_refused(files,
                                                                               monkeypatch):
    volume = read_dicom(files["small"])
    plain = read_dicom(SOURCE)
    assert (volume.data == plain.data).all()
    monkeypatch.setenv("MEDSEG_MAX_UNZIPPED_BYTES", "20000")  # the small one inflates to ~21 kB
    with pytest.raises(InputError, match="inflates to more than 20000 bytes"):
        read_dicom(files["small"])
