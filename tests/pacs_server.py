"""A real Orthanc with the DICOMweb plugin for the PACS tests (Debian ``orthanc`` and
``orthanc-dicomweb``), on a free loopback port with its own temporary storage and config;
and small hostile HTTP servers of our own for what Orthanc never does (drop a connection,
send too much, check a bearer token)."""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def orthanc_available() -> bool:
    return Path(ORTHANC).is_file() and PLUGIN.is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Orthanc:
    root: str  # http://127.0.0.1:PORT
    users: dict[str, str]

    @property
    def dicomweb(self) -> str:
        return f"{self.root}/dicom-web"

    def _request(self, method: str, path: str, data: bytes | None = None):
        req = urllib.request.Request(self.root + path, data=data, method=method)
        if self.users:
            user, password = next(iter(self.users.items()))
            req.add_header("Authorization",
                           "Basic " + b64encode(f"{user}:{password}".encode()).decode())
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def upload(self, files) -> list[dict]:
        """POST /instances for every file (Orthanc's REST API, not under test)."""
        return [self._request("POST", "/instances", Path(f).read_bytes()) for f in files]

    def get(self, path: str):
        return self._request("GET", path)


@contextlib.contextmanager
def running_orthanc(workdir: Path, users: dict[str, str] | None = None) -> Iterator[Orthanc]:
    """Start Orthanc; stop it (and keep its log in ``workdir``) afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {"Name": "medseg-test", "HttpPort": port, "HttpServerEnabled": True,
              "StorageDirectory": str(workdir / "storage"),
              "IndexDirectory": str(workdir / "storage"), "DicomServerEnabled": False,
              "RemoteAccessAllowed": False, "AuthenticationEnabled": bool(users),
              "RegisteredUsers": dict(users or {}), "HttpsVerifyPeers": True,
              "Plugins": [str(PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    (workdir / "orthanc.json").write_text(json.dumps(config))
    with open(workdir / "orthanc.log", "wb") as log:
        proc = subprocess.Popen([ORTHANC, str(workdir / "orthanc.json")], stdout=log,
                                stderr=subprocess.STDOUT, cwd=workdir)
    server = Orthanc(f"http://127.0.0.1:{port}", dict(users or {}))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server.get("/system")
                break
            except (OSError, urllib.error.URLError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Orthanc did not start: "
                                       + (workdir / "orthanc.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextlib.contextmanager
def tiny_server(handle: Handler, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A loopback HTTP/1.1 server (HTTPS with ``tls``) calling ``handle(request)`` for every
    GET/POST; yields its base URL."""

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            handle(self)

        def do_POST(self):
            handle(self)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
