"""A DICOMweb server: its address, credentials and TLS settings, the ``dicomweb-client``
session that talks to it, and one-line errors naming it when something goes wrong.

TLS certificates are verified by default (the system store, or ``ca_bundle``); ``insecure``
turns verification off and says so once, loudly. A URL carrying ``user:password@`` is refused:
credentials belong in the environment or an auth file (:mod:`medseg.pacs.auth`).

Every request runs under an overall deadline (``timeout``: from connecting to the last byte,
retries included) besides a connect timeout, and follows only the redirects that
:func:`medseg.pacs.transport.redirect_guard` allows (:mod:`medseg.pacs.transport`). Every text
that comes from the server is shown and stored without control characters (:func:`describe`).
"""

from __future__ import annotations

import contextlib
import logging
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from medseg.errors import InputError, MedsegError
from medseg.io.limits import MAX_UNZIPPED_BYTES_ENV, max_unzipped_bytes
from medseg.pacs.auth import TOKEN_ENV, USER_ENV, Credentials
from medseg.pacs.transport import Deadline, DeadlineAdapter, RedirectRefusedError, redirect_guard

#: seconds one request may take as a whole (connecting, sending, every byte of the answer)
DEFAULT_TIMEOUT = 300.0
#: seconds to wait for a connection to open
DEFAULT_CONNECT_TIMEOUT = 10.0


def describe(value: Any) -> str:
    """A server-provided text as one plain line (no control characters)."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()


class ServerError(InputError):
    """The server refused, failed or sent something unusable; the message names the server.
    Both parts are made plain (:func:`describe`): they may quote what the server sent."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(describe(path), describe(problem))


class ResponseTooLargeError(Exception):
    """A response passed ``$MEDSEG_MAX_UNZIPPED_BYTES`` (declared or while streaming)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(limit)


def _bound_response(response, *args, **kwargs):
    """``requests`` response hook: refuse a body past the zip size limit, by its declared
    Content-Length at once, else while it streams (``.content`` reads through
    ``iter_content`` too, so JSON answers are bounded as well)."""
    limit = max_unzipped_bytes()
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise ResponseTooLargeError(limit)
    unbounded = response.iter_content

    def iter_content(chunk_size=1, decode_unicode=False):
        total = 0
        for chunk in unbounded(chunk_size, decode_unicode):
            total += len(chunk)
            if total > limit:
                response.close()
                raise ResponseTooLargeError(limit)
            yield chunk

    response.iter_content = iter_content
    return response


def _bare_json_type(response, *args, **kwargs):
    """``requests`` response hook: ``application/dicom+json; charset=utf-8`` as
    ``application/dicom+json``. dicomweb-client compares a STOW-RS answer's Content-Type
    exactly and would read a confirmation with a parameter as no answer at all."""
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media in ("application/dicom+json", "application/json"):
        response.headers["Content-Type"] = media
    return response


@dataclass(frozen=True)
class Server:
    """Where and how to reach a DICOMweb service (``url``: its root, e.g.
    ``https://pacs.example.org/dicom-web``)."""

    url: str
    credentials: Credentials | None = None
    #: CA bundle file for TLS verification (None: the system's)
    ca_bundle: str | None = None
    insecure: bool = False
    #: seconds for a whole request (connect, send, receive), retries included
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    #: follow GET redirects to another origin (never for uploads, never HTTPS -> HTTP)
    follow_redirects: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MedsegError(f"{self.url!r} is not an http(s) DICOMweb URL")
        if parts.username or parts.password:
            raise MedsegError("the DICOMweb URL carries credentials; put them in "
                              f"{USER_ENV}/... or {TOKEN_ENV}, or an --auth-file")
        if not (self.timeout > 0 and self.connect_timeout > 0):
            raise MedsegError("DICOMweb timeouts must be positive numbers of seconds")
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise InputError(self.ca_bundle, "CA bundle not found")
        object.__setattr__(self, "url", self.url.rstrip("/"))

    def __str__(self) -> str:
        return self.url


def open_client(server: Server):
    """A ``dicomweb_client.DICOMwebClient`` for ``server`` (its own ``requests`` session)."""
    import requests
    from dicomweb_client import DICOMwebClient

    _tame_library_logs()
    session = requests.Session()
    session.trust_env = False  # no credentials from ~/.netrc, no proxy surprises
    adapter = DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = 5
    session.hooks["response"] = [redirect_guard(server.url,
                                                other_origins=server.follow_redirects),
                                 _bound_response, _bare_json_type]
    if server.insecure:
        import urllib3

        warnings.warn(f"{server}: TLS certificate verification is OFF (--insecure); anyone "
                      "on the network path can read and alter the images", stacklevel=2)
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        session.verify = False
    elif server.ca_bundle:
        session.verify = server.ca_bundle
    creds = server.credentials
    if creds is not None and creds.token is not None:
        session.headers["Authorization"] = f"Bearer {creds.token}"
    elif creds is not None:
        session.auth = (creds.user or "", creds.password or "")
    client = DICOMwebClient(url=server.url, session=session,
                            timeout=(min(server.connect_timeout, server.timeout),
                                     server.timeout))
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=200)
    client.medseg_session = session  # for the requests medseg makes itself (WADO-RS)
    return client


def _plain_record(record: logging.LogRecord) -> bool:
    """A logging filter: the record's message as one plain line (dicomweb-client logs a
    server's ``Warning`` header and failure reasons as they came)."""
    record.msg, record.args = describe(record.getMessage()), None
    return True


def _tame_library_logs() -> None:
    """urllib3 logs a warning *with a traceback* for a header it cannot parse (a multipart
    Content-Type without a boundary); medseg reports the answer's problem in one line instead.
    The traceback stays for ``--debug`` (the root logger at DEBUG). What the DICOMweb library
    logs from the server is made plain."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    # a logger's filters apply only to its own records, not to those of its children
    for name in ("dicomweb_client.web", "urllib3.connectionpool", "urllib3.connection"):
        logger = logging.getLogger(name)
        if _plain_record not in logger.filters:
            logger.addFilter(_plain_record)


def _http_problem(status: int, server: Server) -> str:
    if status == 401:
        hint = ("no credentials were sent; set MEDSEG_DICOMWEB_USER/_PASSWORD or "
                f"{TOKEN_ENV}, or give --auth-file" if server.credentials is None
                else f"the server refused the {server.credentials.kind} credentials")
        return f"HTTP 401 Unauthorized ({hint})"
    if status == 403:
        return "HTTP 403 Forbidden (these credentials may not do this)"
    if status == 404:
        return "HTTP 404 Not Found (check the URL: it should end at the DICOMweb root)"
    if status == 413:
        return "HTTP 413 the server refused an upload this large"
    return f"HTTP {status}"


@contextlib.contextmanager
def server_errors(server: Server, doing: str) -> Iterator[None]:
    """Run the block under the server's overall deadline and turn what
    ``requests``/``dicomweb-client`` raise while ``doing`` something into one
    :class:`ServerError` line: ``URL: doing: problem``."""
    late = (f"{doing}: no complete answer within {server.timeout:g} s (--timeout, the whole "
            "request); gave up")
    deadline = Deadline(server.timeout)
    try:
        with deadline:
            yield
    except MedsegError:
        raise
    except Exception as exc:
        if deadline.expired:
            raise ServerError(server.url, late) from None
        raise ServerError(server.url, f"{doing}: {_problem(exc, server)}") from None
    if deadline.expired:  # whatever came in before the cut is not trusted
        raise ServerError(server.url, late)


def _problem(exc: Exception, server: Server) -> str:
    """The one-line problem of what a request raised."""
    import requests
    import retrying
    from pydicom.errors import InvalidDicomError

    if isinstance(exc, ResponseTooLargeError):
        return (f"response larger than the limit of {exc.limit} bytes "
                f"(${MAX_UNZIPPED_BYTES_ENV}); nothing was kept")
    if isinstance(exc, RedirectRefusedError):
        return f"the server redirected (HTTP {exc.status}) to {exc.target}: {exc.why}"
    if isinstance(exc, requests.exceptions.SSLError):
        return ("TLS certificate verification failed (give --ca-bundle, or --insecure on a "
                "trusted network)")
    if isinstance(exc, requests.exceptions.HTTPError):
        return _http_problem(exc.response.status_code if exc.response is not None else 0,
                             server)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"timed out connecting ({server.connect_timeout:g} s, --connect-timeout)"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"no data for {server.timeout:g} s (read timeout)"
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection was dropped before the response was complete"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "refused" in text.lower():
            return "connection refused (is the server running on that port?)"
        if any(k in text for k in ("IncompleteRead", "ProtocolError", "RemoteDisconnected",
                                   "Connection broken")):
            return "the connection was dropped before the response was complete"
        return f"cannot connect ({_short(text)})"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"request failed ({type(exc).__name__})"
    if isinstance(exc, retrying.RetryError):
        return "the server stayed busy (HTTP 429/503) after 3 attempts"
    if isinstance(exc, InvalidDicomError | ValueError | LookupError | EOFError | struct.error
                  | TypeError | AttributeError):
        # multipart framing, JSON or DICOM parts that do not decode
        return f"malformed response ({type(exc).__name__}: {_short(str(exc))})"
    raise exc


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"

