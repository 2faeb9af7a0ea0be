"""A small HTTP server on 127.0.0.1 serving release zips, for the pull tests.

It honours ``Range: bytes=N-`` (206 with ``Content-Range``), logs every request with its
headers, and can misbehave on purpose, per path: drop the connection after some bytes of the
first answer (``drop_after``), or send slowly (``delay`` seconds per 64 kB block), or hold an
answer after its first block until the test opens a ``gate``.
"""

from __future__ import annotations

import contextlib
import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Served:
    body: bytes
    #: close the connection after this many bytes of the first full (non-range) answer
    drop_after: int | None = None
    #: seconds to wait after each 64 kB block
    delay: float = 0.0
    #: when set, the answer stops after its first 64 kB block until the event is set
    gate: threading.Event | None = None


@dataclass
class ReleaseServer:
    root: str
    files: dict[str, Served] = field(default_factory=dict)
    #: (method, path, headers) of every request, in order
    log: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def put(self, path: str, body: bytes, **how) -> str:
        self.files[path] = Served(body, **how)
        return self.root + path

    def requests(self, path: str) -> list[dict[str, str]]:
        return [h for m, p, h in self.log if p == path and m == "GET"]


def _handler(server: ReleaseServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _serve(self, head: bool) -> None:
            server.log.append((self.command, self.path, dict(self.headers.items())))
            served = server.files.get(self.path)
            if served is None:
                self.send_error(404)
                return
            body = served.body
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if match and int(match.group(1)) >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            if match:
                start = int(match.group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("ETag", f'"{len(body)}"')
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if head:
                return
            limit = len(body)
            if served.drop_after is not None and not match:
                limit = served.drop_after
                served.drop_after = None  # only the first answer is cut
            pos = start
            with contextlib.suppress(OSError):
                while pos < limit:
                    end = min(limit, pos + 65536)
                    self.wfile.write(body[pos:end])
                    self.wfile.flush()
                    pos = end
                    if served.delay:
                        time.sleep(served.delay)
                    if served.gate is not None:
                        served.gate.wait(timeout=300)
                if limit < len(body):  # cut: close the socket under the client
                    self.connection.shutdown(socket.SHUT_RDWR)

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

    return Handler


@contextlib.contextmanager
def release_server() -> Iterator[ReleaseServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    server = ReleaseServer(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = _handler(server)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
