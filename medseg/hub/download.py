"""One file over HTTP(S), resumed where a dropped connection left it.

The bytes go to ``<dest>.part`` beside the destination; a small ``<dest>.part.json`` keeps the
URL and the server's validators (``ETag``, ``Last-Modified``). After a dropped connection, a
stall past the timeout, or an interrupted earlier run, the next request asks for the rest with
``Range: bytes=N-`` (and ``If-Range``, so a file that changed on the server starts over). A
server that ignores the range (200) restarts the file. Only when every byte the server
announced is there does the part become ``dest`` (one rename). Requests carry no key, token or
statistics: a plain GET with a ``User-Agent``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medseg import __version__
from medseg.errors import InputError, input_error_from_os
from medseg.io.debughooks import pause_point
from medseg.io.guards import reason
from medseg.io.limits import max_unzipped_bytes

#: ``progress(done_bytes, total_bytes_or_None)``
Progress = Callable[[int, int | None], None]
#: ``say(line)``: one line for the user (a resume, a retry)
Say = Callable[[str], None]

CHUNK = 1 << 16
USER_AGENT = f"medseg/{__version__}"
#: network failures worth another (resumed) request
_TRANSIENT: tuple[type[BaseException], ...] = (
    http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout,
    urllib.error.URLError,
)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass
class Download:
    """What one :func:`fetch` did: the file, its size, and the byte offsets it resumed at."""

    path: Path
    size: int
    resumed_at: list[int] = field(default_factory=list)


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _meta_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.json")


def _read_meta(dest: Path, url: str) -> dict:
    try:
        meta = json.loads(_meta_path(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) and meta.get("url") == url else {}


def _write_meta(dest: Path, meta: dict) -> None:
    with contextlib.suppress(OSError):  # only an optimisation for the next resume
        _meta_path(dest).write_text(json.dumps(meta), encoding="utf-8")


def discard_partial(dest: Path) -> None:
    """Forget a partial download of ``dest`` (a corrupt file, a forced fresh pull)."""
    part_path(dest).unlink(missing_ok=True)
    _meta_path(dest).unlink(missing_ok=True)


def _request(url: str, offset: int, meta: dict) -> urllib.request.Request:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            req.add_header("If-Range", validator)
    return req


def _http_error(url: str, exc: urllib.error.HTTPError) -> InputError:
    if exc.code == 404:
        return InputError(url, "not found on the server (HTTP 404)")
    return InputError(url, f"the server answered HTTP {exc.code} {exc.reason}")


def fetch(url: str, dest: str | Path, *, progress: Progress | None = None,
          say: Say | None = None, timeout: float = 60.0, retries: int = 5) -> Download:
    """Download ``url`` to ``dest``, resuming a partial ``<dest>.part`` when there is one.

    ``retries`` consecutive failures without a new byte give up with a one-line
    :class:`InputError` naming the URL (the part is kept: the next call resumes). A 4xx answer
    gives up at once. A full disk is an :class:`InputError` naming the part file.
    """
    dest = Path(dest)
    part = part_path(dest)
    meta = _read_meta(dest, url)
    if not meta:
        discard_partial(dest)
    result = Download(dest, 0)
    failures = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        try:
            total = _one_request(url, part, offset, meta, dest, result, progress, timeout)
        except InputError:  # refused (too large): nothing of it is kept
            discard_partial(dest)
            raise
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # our part is longer than the file: start over
                discard_partial(dest)
                meta = {}
                continue
            if exc.code < 500:
                raise _http_error(url, exc) from None
            error: BaseException = exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, socket.gaierror):  # no such host: retrying cannot help
                raise InputError(url, f"cannot reach the server ({exc.reason.strerror}); "
                                      "set $MEDSEG_TOTALSEG_URL to a mirror") from None
            error = exc
        except OSError as exc:
            if isinstance(exc, _TRANSIENT):
                error = exc
            else:
                raise input_error_from_os(part, exc) from None
        except _TRANSIENT as exc:
            error = exc
        else:
            size = part.stat().st_size
            if total is not None and size != total:
                error = ConnectionError(f"got {size} of {total} bytes")
            else:
                os.replace(part, dest)
                _meta_path(dest).unlink(missing_ok=True)
                result.size = size
                return result
        grown = (part.stat().st_size if part.exists() else 0) > offset
        failures = 0 if grown else failures + 1
        have = part.stat().st_size if part.exists() else 0
        if failures > retries:
            kept = f"; run the pull again to resume from {have} bytes" if have else ""
            raise InputError(url, f"download failed after {retries} retries "
                                  f"({reason(error)}){kept}") from None
        if say:
            what = f"connection lost at {have} bytes" if have else "no answer"
            say(f"{what} ({reason(error, 80)}); {'resuming' if have else 'retrying'}")
        time.sleep(min(0.2 * 2 ** failures, 5.0))


def _one_request(url: str, part: Path, offset: int, meta: dict, dest: Path, result: Download,
                 progress: Progress | None, timeout: float) -> int | None:
    """One GET (ranged from ``offset``); appends to ``part``; returns the file's total size
    when the server said it."""
    with urllib.request.urlopen(_request(url, offset, meta), timeout=timeout) as resp:
        status = resp.status
        total: int | None = None
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != offset:
                raise http.client.HTTPException("the server sent another range than asked")
            total = int(match.group(3)) if match.group(3) != "*" else None
            result.resumed_at.append(offset)
            mode = "ab"
        else:  # 200: the whole file (a server without ranges, or a changed file)
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            offset = 0
            mode = "wb"
        _write_meta(dest, {"url": url, "etag": resp.headers.get("ETag"),
                           "last_modified": resp.headers.get("Last-Modified"), "total": total})
        meta.update(_read_meta(dest, url))
        done = offset
        if progress:
            progress(done, total)
        limit = max_unzipped_bytes()  # a release zip is never larger than what it expands to
        if (total or 0) > limit:
            raise InputError(url, f"the server offers {total} bytes, more than the limit of "
                                  f"{limit} bytes ($MEDSEG_MAX_UNZIPPED_BYTES)")
        with open(part, mode) as fh:
            while chunk := resp.read(CHUNK):
                if done + len(chunk) > limit:
                    raise InputError(url, f"the server sends more than the limit of {limit} "
                                          "bytes ($MEDSEG_MAX_UNZIPPED_BYTES)")
                fh.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
                pause_point("pull-downloading")
            fh.flush()
            os.fsync(fh.fileno())
    return total
