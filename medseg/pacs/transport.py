"""The HTTP transport under the DICOMweb client: an overall deadline per request, and the
redirect policy.

**Deadline.** ``requests`` bounds the wait for each received byte, not a whole answer, so a
server that sends one byte a second holds a client forever. Within ``with Deadline(s):`` every
connection that connects or sends a request is watched; when ``s`` seconds have passed a timer
shuts its socket down, so whatever is blocked on it returns at once, and ``expired`` says why.
The connection classes of :class:`DeadlineAdapter` do the watching.

**Redirects.** :func:`redirect_guard` is a ``requests`` response hook, run before ``requests``
follows a redirect: an upload (any method but GET/HEAD, i.e. STOW-RS) is never redirected,
since following it would send the SEG, with the patient's name and ID, to a place the user
never named; a GET goes to another origin (scheme, host and port) only when allowed, and never
from HTTPS down to HTTP.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urljoin, urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_active = threading.local()


class DeadlinePassedError(OSError):
    """Raised to a request started after its deadline passed."""


class Deadline:
    """A time limit over everything sent and received inside the ``with`` block."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.expired = False
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None

    def watch(self, connection: HTTPConnection) -> None:
        """Watch ``connection`` and the socket it has now (http.client hands the socket of
        an answer that ends with the connection over to the answer, off the connection)."""
        with self._lock:
            if self.expired:
                _shut(connection)
                raise DeadlinePassedError(f"no time left of the {self.seconds:g} s deadline")
            if connection not in self._connections:
                self._connections.append(connection)
            sock = getattr(connection, "sock", None)
            if sock is not None and sock not in self._sockets:
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection in self._connections:
                _shut(connection)
            for sock in self._sockets:
                _shut_socket(sock)

    def __enter__(self) -> Deadline:
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        stack = getattr(_active, "stack", None)
        if stack is None:
            stack = _active.stack = []
        stack.append(self)
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
        _active.stack.remove(self)


def _shut(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        _shut_socket(sock)


def _shut_socket(sock: socket.socket) -> None:
    # the plain socket call: no TLS close-notify exchange with a stalling peer
    with contextlib.suppress(OSError, TypeError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch(connection: HTTPConnection) -> None:
    for deadline in getattr(_active, "stack", ()):
        deadline.watch(connection)


class _Watched:
    """Puts the connection under every active deadline before each step that can block."""

    def connect(self) -> None:
        _watch(self)  # type: ignore[arg-type]
        super().connect()  # type: ignore[misc]
        _watch(self)  # type: ignore[arg-type]

    def request(self, *args, **kwargs):
        _watch(self)  # type: ignore[arg-type]
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args, **kwargs):
        _watch(self)  # type: ignore[arg-type]
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections obey the active :class:`Deadline`."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (the default port written out)."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class RedirectRefusedError(Exception):
    """The server answered with a redirect that medseg does not follow."""

    def __init__(self, status: int, target: str, why: str) -> None:
        self.status, self.target, self.why = status, target, why
        super().__init__(f"HTTP {status} to {target}: {why}")


def redirect_guard(server_url: str, *, other_origins: bool = False):
    """A response hook refusing redirects of uploads, downgrades to plain HTTP and (unless
    ``other_origins``) GET redirects to an origin other than ``server_url``'s."""
    home = origin(server_url)
    secure = urlsplit(server_url).scheme == "https"

    def hook(response, *args, **kwargs):
        if not response.is_redirect:
            return response
        target = urljoin(response.url, response.headers.get("location", ""))
        there = origin(target)
        method = (response.request.method or "GET").upper() if response.request else "GET"
        why = None
        if method not in ("GET", "HEAD"):
            why = "medseg never follows a redirect of an upload (STOW-RS)"
        elif secure and urlsplit(target).scheme != "https":
            why = "medseg never follows a redirect from HTTPS to plain HTTP"
        elif there != home and not other_origins:
            why = "another origin than the server's; not followed (--follow-redirects allows it)"
        if why is not None:
            response.close()
            raise RedirectRefusedError(response.status_code, there, why)
        return response

    return hook
