"""A small DICOMweb server of our own for the second attack round's PACS tests (issue 24):
QIDO-RS series listings, WADO-RS series retrieval and STOW-RS storage over a folder of real
DICOM files, on a free loopback port, where a test can replace any answer with a hostile one
(a drip, a redirect, a malformed answer) and every request is recorded.

Orthanc (``tests/pacs_server.py``) is the real PACS; this one exists for what Orthanc never
does, and it runs where Orthanc is not installed."""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pydicom

from tests.pacs_server import tiny_server

BOUNDARY = "medseg-fake-boundary"
#: ``override(request)`` answers a request in place of the fake's own answer
Override = Callable[[object], None]


@dataclass
class Recorded:
    method: str
    path: str
    body: bytes = b""


@dataclass
class FakeDicomweb:
    """A DICOMweb root at ``url`` (``http://127.0.0.1:PORT/dicom-web``)."""

    url: str
    requests: list[Recorded]
    stored: list[pydicom.Dataset]
    overrides: dict[str, Override] = field(default_factory=dict)

    @property
    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]


def _series_json(files: list[Path]) -> list[dict]:
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    return [{"0020000E": {"vr": "UI", "Value": [str(ds.SeriesInstanceUID)]},
             "00080060": {"vr": "CS", "Value": [str(ds.Modality)]},
             "00200011": {"vr": "IS", "Value": [int(getattr(ds, "SeriesNumber", 1) or 1)]},
             "0008103E": {"vr": "LO", "Value": [str(getattr(ds, "SeriesDescription", ""))]},
             "00201209": {"vr": "IS", "Value": [len(files)]}}]


def send(req, status: int, body: bytes = b"", content_type: str = "application/dicom+json",
         headers: dict[str, str] | None = None) -> None:
    req.send_response(status)
    req.send_header("Content-Type", content_type)
    req.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
        req.send_header(key, value)
    req.end_headers()
    req.wfile.write(body)


def _stow_parts(req) -> tuple[list[pydicom.Dataset], bytes]:
    body = req.rfile.read(int(req.headers.get("Content-Length", 0)))
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + req.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
    return [pydicom.dcmread(BytesIO(part.get_payload(decode=True)))
            for part in message.iter_parts()], body


@contextlib.contextmanager
def fake_dicomweb(studies: dict[str, list[Path]]) -> Iterator[FakeDicomweb]:
    """Serve ``studies`` (StudyInstanceUID -> the files of its one series)."""
    lock = threading.Lock()
    state: dict[str, FakeDicomweb] = {}

    def handle(req) -> None:
        fake = state["fake"]
        path = req.path.split("?")[0]
        for pattern, override in fake.overrides.items():
            if re.fullmatch(pattern, f"{req.command} {path}"):
                with lock:
                    fake.requests.append(Recorded(req.command, req.path))
                override(req)
                return
        m = re.fullmatch(r"/dicom-web/studies/([0-9.]+)/series(?:/([0-9.]+))?", path)
        if req.command == "POST":
            m_post = re.fullmatch(r"/dicom-web/studies/([0-9.]+)", path)
            datasets, body = _stow_parts(req)
            with lock:
                fake.requests.append(Recorded("POST", req.path, body))
                fake.stored.extend(datasets)
            if m_post is None:
                send(req, 404)
                return
            refs = [{"00081150": {"vr": "UI", "Value": [str(d.SOPClassUID)]},
                     "00081155": {"vr": "UI", "Value": [str(d.SOPInstanceUID)]}}
                    for d in datasets]
            send(req, 200, json.dumps({"00081199": {"vr": "SQ", "Value": refs}}).encode())
            return
        with lock:
            fake.requests.append(Recorded(req.command, req.path))
        if m is None or m.group(1) not in studies:
            send(req, 404)
            return
        files = studies[m.group(1)]
        if m.group(2) is None:
            send(req, 200, json.dumps(_series_json(files)).encode())
            return
        parts = b"".join(b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom"
                         b"\r\n\r\n" + f.read_bytes() + b"\r\n" for f in files)
        send(req, 200, parts + b"--" + BOUNDARY.encode() + b"--\r\n",
             content_type=f'multipart/related; type="application/dicom"; boundary={BOUNDARY}')

    with tiny_server(handle) as root:
        fake = FakeDicomweb(f"{root}/dicom-web", [], [])
        state["fake"] = fake
        yield fake
