"""A DICOMweb server: its address, credentials and TLS settings, the ``dicomweb-client``
session that talks to it, and one-line errors naming it when something goes wrong.

TLS certificates are verified by default (the system store, or ``ca_bundle``); ``insecure``
turns verification off and says so once, loudly. A URL carrying ``user:password@`` is refused:
credentials belong in the environment or an auth file (:mod:`medseg.pacs.auth`).
"""

from __future__ import annotations

import contextlib
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

#: seconds to wait for a connection and between two received bytes
DEFAULT_TIMEOUT = 60.0


class ServerError(InputError):
    """The server refused, failed or sent something unusable; the message names the server."""


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


@dataclass(frozen=True)
class Server:
    """Where and how to reach a DICOMweb service (``url``: its root, e.g.
    ``https://pacs.example.org/dicom-web``)."""

    url: str
    credentials: Credentials | None = None
    #: CA bundle file for TLS verification (None: the system's)
    ca_bundle: str | None = None
    insecure: bool = False
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MedsegError(f"{self.url!r} is not an http(s) DICOMweb URL")
        if parts.username or parts.password:
            raise MedsegError("the DICOMweb URL carries credentials; put them in "
                              f"{USER_ENV}/... or {TOKEN_ENV}, or an --auth-file")
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise InputError(self.ca_bundle, "CA bundle not found")
        object.__setattr__(self, "url", self.url.rstrip("/"))

    def __str__(self) -> str:
        return self.url


def open_client(server: Server):
    """A ``dicomweb_client.DICOMwebClient`` for ``server`` (its own ``requests`` session)."""
    import requests
    from dicomweb_client import DICOMwebClient

    session = requests.Session()
    session.trust_env = False  # no credentials from ~/.netrc, no proxy surprises
    session.hooks["response"].append(_bound_response)
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
                            timeout=(min(server.timeout, 30.0), server.timeout))
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=200)
    return client


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
    """Turn what ``requests``/``dicomweb-client`` raise while ``doing`` something into one
    :class:`ServerError` line: ``URL: doing: problem``."""
    import requests
    import retrying
    from pydicom.errors import InvalidDicomError

    def fail(problem: str) -> ServerError:
        return ServerError(server.url, f"{doing}: {problem}")

    try:
        yield
    except ServerError:
        raise
    except ResponseTooLargeError as exc:
        raise fail(f"response larger than the limit of {exc.limit} bytes "
                   f"(${MAX_UNZIPPED_BYTES_ENV}); nothing was kept") from None
    except requests.exceptions.SSLError:
        raise fail("TLS certificate verification failed (give --ca-bundle, or --insecure "
                   "on a trusted network)") from None
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        raise fail(_http_problem(status, server)) from None
    except requests.exceptions.ConnectTimeout:
        raise fail("timed out connecting") from None
    except requests.exceptions.ReadTimeout:
        raise fail(f"no data for {server.timeout:g} s (read timeout)") from None
    except requests.exceptions.ChunkedEncodingError:
        raise fail("the connection was dropped before the response was complete") from None
    except requests.exceptions.ConnectionError as exc:
        text = str(exc)
        if "refused" in text.lower():
            raise fail("connection refused (is the server running on that port?)") from None
        if any(k in text for k in ("IncompleteRead", "ProtocolError", "RemoteDisconnected",
                                   "Connection broken")):
            raise fail("the connection was dropped before the response was complete") from None
        raise fail(f"cannot connect ({_short(text)})") from None
    except requests.exceptions.RequestException as exc:
        raise fail(f"request failed ({type(exc).__name__})") from None
    except retrying.RetryError:
        raise fail("the server stayed busy (HTTP 429/503) after 3 attempts") from None
    except (InvalidDicomError, ValueError, LookupError, EOFError, struct.error) as exc:
        # multipart framing, JSON or DICOM parts that do not decode
        raise fail(f"malformed response ({type(exc).__name__}: {_short(str(exc))})") from None


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe(value: Any) -> str:
    """A server-provided text as one plain line (no control characters)."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()
