"""The PACS client against hostile servers (issue 24, items 5-8, 12, 14, 15): each test is the
attack's reproduction, run against servers on 127.0.0.1 started here (a drip, a redirect, a
malformed answer; :mod:`tests.dicomweb_fake` serves real DICOM files over QIDO/WADO/STOW)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
import pytest

from medseg.cli import build_parser, main
from medseg.pacs.client import Server, ServerError, open_client
from medseg.pacs.query import list_series, list_studies
from medseg.pacs.retrieve import download_series
from medseg.pacs.store import push_seg
from medseg.pacs.worklist import Request, Unplanned, plan
from tests.dicomweb_fake import fake_dicomweb, send
from tests.pacs_server import tiny_server
from tests.pause_kill import kill_at

ROOT = Path(__file__).resolve().parents[1]
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"
MODEL = ROOT / "sample_data" / "models" / "abdomen_ct"
MALFORMED_STUDY = "1.2.826.0.1.3680043.8.498.24001"
ESCAPE_STUDY = "1.2.826.0.1.3680043.8.498.24002"
#: what a terminal would run: clear the screen, set the window title, ring the bell
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x9b31m"


def _phantom() -> tuple[str, str, list[Path]]:
    files = sorted(SERIES.iterdir())
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), files


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / ".pp"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1"}


def _no_control(text: str) -> bool:
    return not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 for c in text)


# --- item 5: a server sending one byte a second is cut at --timeout ------------------------

def _dripping(payload: bytes, stop: threading.Event, head: bytes = b""):
    """A handler that writes ``head`` at once, then ``payload`` one byte a second."""

    def handle(req):
        try:
            req.wfile.write(head)
            for byte in payload:
                if stop.is_set():
                    return
                req.wfile.write(bytes([byte]))
                time.sleep(1.0)
        except OSError:  # the client hung up: what the test wants
            return
        req.close_connection = True

    return handle


def test_a_one_byte_a_second_server_ends_at_the_timeout(capsys, tmp_path):
    stop = threading.Event()
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\n"
              b"Content-Length: 2\r\n\r\n[]")  # ~90 s at one byte a second
    build_parser()  # timed below: the request, not the first import of every command
    try:
        with tiny_server(_dripping(answer, stop)) as url:
            start = time.monotonic()
            rc = main(["pacs", "studies", url, "--timeout", "3"])
            seconds = time.monotonic() - start
    finally:
        stop.set()
    err = capsys.readouterr().err.strip()
    assert rc == 2 and seconds < 10, (rc, seconds)
    assert err == (f"medseg: error: {url}: listing studies: no complete answer within 3 s "
                   "(--timeout, the whole request); gave up")
    # WADO: the headers come at once, the multipart body at one byte a second
    study, series, files = _phantom()
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: multipart/related; type=\"application/dicom\"; "
            b"boundary=B\r\n\r\n")
    body = b"--B\r\nContent-Type: application/dicom\r\n\r\n" + files[0].read_bytes()
    stop = threading.Event()
    try:
        with tiny_server(_dripping(body, stop, head)) as url:
            server = Server(url, timeout=3)
            start = time.monotonic()
            with pytest.raises(ServerError, match="no complete answer within 3 s"):
                download_series(open_client(server), server, study, series, tmp_path / "dl")
            seconds = time.monotonic() - start
    finally:
        stop.set()
    assert seconds < 10 and not list((tmp_path / "dl").iterdir())


# --- item 6: no redirect for an upload, none to another origin for a query -----------------

def _seg_like() -> pydicom.Dataset:
    """A real instance of the phantom study carrying the patient's name and ID, standing for
    the SEG that --push sends (the transport does not look inside)."""
    ds = pydicom.dcmread(sorted(SERIES.iterdir())[0])
    ds.PatientName, ds.PatientID = "DOE^JOHN", "PID-24-0006"
    return ds


def test_a_redirected_push_reaches_no_other_server():
    seen: list[str] = []

    def elsewhere(req):
        seen.append(f"{req.command} {req.path}")
        req.rfile.read(int(req.headers.get("Content-Length", 0)))
        send(req, 200, b"{}")

    with tiny_server(elsewhere) as other, fake_dicomweb({}) as fake:
        fake.overrides[r"POST .*"] = lambda req: send(
            req, 307, headers={"Location": f"{other}/dicom-web/studies/1.2.3"})
        server = Server(fake.url)
        with pytest.raises(ServerError) as exc:
            push_seg(open_client(server), server, _seg_like())
    assert seen == []  # the SEG, with the patient's name and ID, went nowhere else
    assert "redirected (HTTP 307)" in str(exc.value)
    assert "never follows a redirect of an upload" in str(exc.value)
    assert fake.posts and all(r.path.startswith("/dicom-web/studies/") for r in fake.posts)


def test_a_query_is_redirected_only_within_the_server_unless_allowed():
    seen: list[str] = []

    def elsewhere(req):
        seen.append(req.path)
        send(req, 200, b"[]")

    with tiny_server(elsewhere) as other, fake_dicomweb({}) as fake:
        fake.overrides[r"GET /dicom-web/studies"] = lambda req: send(
            req, 302, headers={"Location": f"{other}/dicom-web/studies"})
        server = Server(fake.url)
        with pytest.raises(ServerError, match=r"redirected \(HTTP 302\) to http://127\.0\.0\.1:"
                                              r"\d+: another origin"):
            list_studies(open_client(server), server)
        assert seen == []
        allowed = Server(fake.url, follow_redirects=True)
        assert list_studies(open_client(allowed), allowed) == []
        assert seen and seen[0].startswith("/dicom-web/studies")
        # a redirect within the server's own origin is followed without the flag
        fake.overrides[r"GET /dicom-web/studies"] = lambda req: send(
            req, 302, headers={"Location": "/dicom-web/moved/studies"})
        fake.overrides[r"GET /dicom-web/moved/studies"] = lambda req: send(req, 200, b"[]")
        assert list_studies(open_client(server), server) == []


# --- items 6, 12, 15 through the CLI: one worklist, each study failing alone ---------------

def test_a_worklist_survives_malformed_answers_escapes_and_a_redirected_push(tmp_path, capsys):
    study, _series, files = _phantom()
    escape_series = "1.2.826.0.1.3680043.8.498.24003"
    seen: list[str] = []

    def elsewhere(req):
        seen.append(f"{req.command} {req.path}")
        send(req, 200, b"{}")

    row = {"0020000E": {"vr": "UI", "Value": [escape_series]},
           "00080060": {"vr": "CS", "Value": ["CT"]},
           "0008103E": {"vr": "LO", "Value": [f"abdomen{ESCAPES}"]},
           "00201209": {"vr": "IS", "Value": [3]}}
    worklist = tmp_path / "worklist.csv"
    worklist.write_text(f"StudyInstanceUID\n{study}\n{MALFORMED_STUDY}\n{ESCAPE_STUDY}\n")
    out = tmp_path / "out"
    with tiny_server(elsewhere) as other, fake_dicomweb({study: files}) as fake:
        fake.overrides[rf"GET /dicom-web/studies/{MALFORMED_STUDY}/series"] = lambda req: send(
            req, 200, b'["x", 1, null]')
        fake.overrides[rf"GET /dicom-web/studies/{ESCAPE_STUDY}/series"] = lambda req: send(
            req, 200, json.dumps([row]).encode())
        fake.overrides[rf"GET /dicom-web/studies/{ESCAPE_STUDY}/series/{escape_series}"] = \
            lambda req: send(req, 200, b"<html>", content_type=f"text/html{ESCAPES}")
        fake.overrides[r"POST .*"] = lambda req: send(
            req, 307, headers={"Location": f"{other}/dicom-web/studies/{study}"})
        rc = main(["segment", "--dicomweb", fake.url, "--worklist", str(worklist), "-m",
                   str(MODEL), "-o", str(out), "--push", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 2 and seen == [], captured.err[-2000:]  # 2: no case done
    raw = (out / "summary.json").read_text()
    assert _no_control(raw) and _no_control(captured.out + captured.err)
    rows = {r["study"]: r for r in json.loads(raw)}
    assert list(rows) == [study, MALFORMED_STUDY, ESCAPE_STUDY]
    assert all(r["status"] == "error" for r in rows.values())
    pushed = rows[study]["message"]
    assert pushed.startswith(f"push failed: {fake.url}: storing the SEG into study {study}: "
                             "the server redirected (HTTP 307)")
    assert "pushed" not in rows[study]
    assert not (out / f"{rows[study]['case']}.nii.gz").exists()  # not finished: redone next
    assert rows[MALFORMED_STUDY]["message"] == (
        f"{fake.url}: listing series of study {MALFORMED_STUDY}: malformed response "
        "(MalformedAnswerError: item 1 is str, not an object)")
    escaped = rows[ESCAPE_STUDY]["message"]
    assert "unexpected Content-Type 'text/html" in escaped and "owned" in escaped


def test_a_malformed_value_is_an_error_naming_the_study():
    bad = [{"0020000E": {"vr": "UI", "Value": {"not": "a list"}}}]
    with fake_dicomweb({}) as fake:
        fake.overrides[r"GET /dicom-web/studies/1\.2\.3/series"] = lambda req: send(
            req, 200, json.dumps(bad).encode())
        fake.overrides[r"GET /dicom-web/studies/1\.2\.4/series"] = lambda req: send(
            req, 200, b'{"0020000E": 7}')
        server = Server(fake.url)
        client = open_client(server)
        with pytest.raises(ServerError, match="the Value of 0020000E is dict, not a list"):
            list_series(client, server, "1.2.3")
        planned = plan(client, server, [Request("1.2.3"), Request("1.2.4")], "CT")
    assert [type(p) for p in planned] == [Unplanned, Unplanned]
    assert "attribute 0020000E is int, not an object" in planned[1].message


# --- item 7: a run killed during its push pushes on the rerun ------------------------------

@pytest.mark.slow  # two segmentations' worth of start-up (~30 s on a busy CPU)
def test_a_push_killed_midway_is_pushed_on_the_rerun(tmp_path):
    study, _series, files = _phantom()
    out = tmp_path / "out"
    args = ["segment", "--dicomweb", "", "--study", study, "-m", str(MODEL), "-o", str(out),
            "--push", "--quiet"]
    with fake_dicomweb({study: files}) as fake:
        args[2] = fake.url
        kill_at("pacs-before-push", ["-m", "medseg.cli", *args], tmp_path)
        assert fake.posts == []
        (seg,) = out.glob("*_seg.dcm")  # named by date, modality, number, hash of the UID
        case = seg.name.removesuffix("_seg.dcm")
        assert (out / f"{case}_manifest.json").is_file()
        mask_time = (out / f"{case}.nii.gz").stat().st_mtime_ns
        local_uid = str(pydicom.dcmread(seg, stop_before_pixels=True).SOPInstanceUID)
        assert main(args) == 0
        row = json.loads((out / "summary.json").read_text())[0]
        assert row["status"] == "ok" and row["pushed"] == local_uid
        assert "pushed now" in row["message"]
        assert [str(d.SOPInstanceUID) for d in fake.stored] == [local_uid]
        assert (out / f"{case}.nii.gz").stat().st_mtime_ns == mask_time  # not redone
        # a third run: done, confirmed, nothing sent again
        assert main(args) == 0
        row = json.loads((out / "summary.json").read_text())[0]
        assert row["status"] == "skipped" and row["pushed"] == local_uid
        assert len(fake.posts) == 1


# --- item 8: a large instance costs one chunk of memory, and one past the limit is refused ---

PIXELS = 128 * 1024**2  # one instance of 128 MiB: 4 frames of 4096 x 4096 x 16 bit


def _large_instance(path: Path, study: str, series: str) -> Path:
    """A real CT instance whose pixel data is PIXELS bytes, written in chunks."""
    ds = pydicom.dcmread(sorted(SERIES.iterdir())[0])
    del ds.PixelData
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Rows = ds.Columns = 4096
    ds.NumberOfFrames = 4
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    with open(path, "ab") as fh:
        fh.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, PIXELS))
        chunk = bytes(1 << 22)
        for _ in range(PIXELS // len(chunk)):
            fh.write(chunk)
    return path


def _streaming_wado(path: Path):
    def handle(req):
        req.send_response(200)
        req.send_header("Content-Type", 'multipart/related; type="application/dicom"; '
                                        "boundary=BIG")
        req.end_headers()
        req.wfile.write(b"--BIG\r\nContent-Type: application/dicom\r\n\r\n")
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                req.wfile.write(chunk)
        req.wfile.write(b"\r\n--BIG--\r\n")
        req.close_connection = True

    return handle


_DOWNLOAD = """
import resource, sys
from medseg.pacs.client import Server, open_client
from medseg.pacs.retrieve import download_series
server = Server(sys.argv[1])
files = download_series(open_client(server), server, sys.argv[2], sys.argv[3], sys.argv[4])
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(rss, sum(f.stat().st_size for f in files))
"""


def _download_rss(url: str, study: str, series: str, dest: Path) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", _DOWNLOAD, url, study, series, str(dest)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rss, size = done.stdout.split()
    return int(rss), int(size)


def test_a_large_instance_is_streamed_to_disk_and_one_past_the_limit_refused(tmp_path,
                                                                             monkeypatch):
    study, series, files = _phantom()
    big_study, big_series = "1.2.826.0.1.3680043.8.498.24008", "1.2.826.0.1.3680043.8.498.24009"
    big = _large_instance(tmp_path / "big.dcm", big_study, big_series)
    with fake_dicomweb({study: files}) as fake:
        fake.overrides[rf"GET /dicom-web/studies/{big_study}/series/{big_series}"] = \
            _streaming_wado(big)
        base_rss, base_size = _download_rss(fake.url, study, series, tmp_path / "small")
        rss, size = _download_rss(fake.url, big_study, big_series, tmp_path / "big")
        assert base_size == sum(f.stat().st_size for f in files)
        assert size == big.stat().st_size > PIXELS
        # the old client held the instance several times over (0.85 GB for 210 MB)
        assert rss - base_rss < 40 * 1024**2, (rss, base_rss)
        monkeypatch.setenv("MEDSEG_MAX_MEMORY_BYTES", str(64 * 1024**2))
        server = Server(fake.url)
        with pytest.raises(ServerError, match=r"an instance larger than the limit of 67108864 "
                                              r"bytes \(\$MEDSEG_MAX_MEMORY_BYTES\); nothing"):
            download_series(open_client(server), server, big_study, big_series,
                            tmp_path / "refused")
    assert not list((tmp_path / "refused").iterdir())


# --- item 14: no traceback without --debug -------------------------------------------------

def test_a_multipart_answer_without_a_boundary_prints_no_traceback(tmp_path):
    """urllib3 logged its header-parsing failure with a traceback; now one error line."""
    study, series, files = _phantom()
    out = tmp_path / "out"
    with fake_dicomweb({study: files}) as fake:
        fake.overrides[rf"GET /dicom-web/studies/{study}/series/{series}"] = lambda req: send(
            req, 200, b"--x\r\n\r\nabc\r\n--x--", content_type="multipart/related")
        done = subprocess.run([sys.executable, "-m", "medseg.cli", "segment", "--dicomweb",
                               fake.url, "--study", study, "-m", str(MODEL), "-o", str(out),
                               "--quiet"], env=_env(), capture_output=True, text=True,
                              timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == (f"medseg: error: {fake.url}: downloading series {series}: "
                                   "malformed response (MultipartError: a multipart answer "
                                   "without a boundary)")


def test_what_the_library_logs_from_the_server_is_plain(caplog):
    """dicomweb-client logs a server's ``Warning`` header as it came."""
    with fake_dicomweb({}) as fake:
        fake.overrides[r"GET /dicom-web/studies"] = lambda req: send(
            req, 200, b"[]", headers={"Warning": f"299 pacs {ESCAPES}more results"})
        server = Server(fake.url)
        with caplog.at_level("WARNING"):
            assert list_studies(open_client(server), server) == []
    logged = [r.getMessage() for r in caplog.records if "more results" in r.getMessage()]
    assert logged and all(_no_control(m) for m in logged)


def test_a_push_counts_only_when_the_server_confirms_it():
    """A STOW answer naming the SEG confirms it (with or without a charset parameter); an
    empty 200 does not."""
    seg = _seg_like()
    uid = str(seg.SOPInstanceUID)
    confirm = json.dumps({"00081199": {"vr": "SQ", "Value": [
        {"00081155": {"vr": "UI", "Value": [uid]}}]}}).encode()
    with fake_dicomweb({}) as fake:
        server = Server(fake.url)
        fake.overrides[r"POST .*"] = lambda req: send(
            req, 200, confirm, content_type="application/dicom+json; charset=utf-8")
        assert push_seg(open_client(server), server, seg) == uid
        fake.overrides[r"POST .*"] = lambda req: send(req, 200, b"")
        with pytest.raises(ServerError, match="did not confirm the instance"):
            push_seg(open_client(server), server, seg)
