"""WADO-RS download of one series into a folder, for medseg's DICOM reader.

The multipart response is streamed and each instance written to its file as it arrives
(:mod:`medseg.pacs.multipart`): memory stays at one chunk whatever an instance's size. The
limits that bound zip archives bound a download too (``$MEDSEG_MAX_ZIP_MEMBERS`` instances,
``$MEDSEG_MAX_UNZIPPED_BYTES`` per response, enforced by the session of
:func:`medseg.pacs.client.open_client`), and one instance may not pass
``$MEDSEG_MAX_MEMORY_BYTES`` (it could not be read anyway). Each instance is checked as soon as
it is complete, through medseg's guarded DICOM reader (a deflated dataset is inflated only
within the limits): an instance of another study or series than the one asked for is refused,
since the SEG would otherwise describe images it does not reference. On any failure the files
written so far are removed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medseg.errors import InputError
from medseg.io.dicom import dcmread
from medseg.io.limits import (
    MAX_MEMORY_BYTES_ENV,
    MAX_ZIP_MEMBERS_ENV,
    max_memory_bytes,
    max_zip_members,
)
from medseg.pacs.client import Server, ServerError, describe, server_errors
from medseg.pacs.multipart import (
    MultipartError,
    MultipartFiles,
    PartTooLargeError,
    SingleFile,
    content_type_params,
)
from medseg.pacs.query import check_uid

#: ``progress(instances_received, instances_expected or None)``
Progress = Callable[[int, int | None], None]
#: what medseg asks for (as dicomweb-client does): DICOM Part 10 instances, any syntax the
#: server stores them in being acceptable to pydicom
ACCEPT = 'multipart/related; type="application/dicom"'
_CHUNK = 1 << 16


def download_series(client, server: Server, study: str, series: str, dest: str | Path, *,
                    expected: int | None = None, progress: Progress | None = None
                    ) -> list[Path]:
    """Write every instance of ``series`` (of ``study``) as ``dest/NNNNN.dcm``."""
    study, series = check_uid(study, "study"), check_uid(series, "series")
    dest = Path(dest)
    limit = max_zip_members()
    doing = f"downloading series {series}"
    if expected is not None and expected > limit:
        raise ServerError(server.url, f"{doing}: {expected} instances, more than the limit "
                                      f"{limit} (${MAX_ZIP_MEMBERS_ENV})")
    dest.mkdir(parents=True, exist_ok=True)
    done: list[Path] = []

    def path_for(index: int) -> Path:
        if index >= limit:
            raise ServerError(server.url, f"{doing}: more than {limit} instances "
                                          f"(${MAX_ZIP_MEMBERS_ENV})")
        return dest / f"{index:05d}.dcm"

    def check(path: Path) -> None:
        try:
            ds = dcmread(path, stop_before_pixels=True)
            got = (str(getattr(ds, "StudyInstanceUID", "")),
                   str(getattr(ds, "SeriesInstanceUID", "")))
        except InputError as exc:
            raise ServerError(server.url, f"{doing}: instance {len(done) + 1}: "
                                          f"{exc.problem}") from None
        if got != (study, series):
            raise ServerError(server.url, f"{doing}: the server sent an instance of series "
                                          f"{describe(got[1]) or '?'}; refused")
        done.append(path)
        if progress is not None:
            progress(len(done), expected)

    session = client.medseg_session
    url = f"{server.url}/studies/{study}/series/{series}"
    writer: MultipartFiles | SingleFile | None = None
    try:
        with server_errors(server, doing), \
                session.get(url, headers={"Accept": ACCEPT}, stream=True,
                            timeout=(server.connect_timeout, server.timeout)) as response:
            response.raise_for_status()
            writer = _writer(response.headers.get("Content-Type", ""), path_for, check)
            try:
                for chunk in response.iter_content(_CHUNK):
                    writer.feed(chunk)
                writer.finish()
            except PartTooLargeError as exc:
                raise ServerError(server.url, f"{doing}: an instance larger than the limit "
                                              f"of {exc.limit} bytes (${MAX_MEMORY_BYTES_ENV});"
                                              " nothing was kept") from None
        if not done:
            raise ServerError(server.url, f"{doing}: the series holds no instances")
    except BaseException:
        if writer is not None:
            writer.close()
            for p in writer.paths:
                p.unlink(missing_ok=True)
        raise
    return done


def _writer(content_type: str, path_for, check) -> MultipartFiles | SingleFile:
    """The splitter for this answer: multipart/related, or (some servers) one bare
    application/dicom body."""
    media, params = content_type_params(content_type)
    part_limit = max_memory_bytes()
    if media == "application/dicom":
        return SingleFile(path_for, part_limit=part_limit, on_part=check)
    if media != "multipart/related":
        raise MultipartError(f"unexpected Content-Type {describe(content_type)[:80]!r}")
    if not params.get("boundary"):
        raise MultipartError("a multipart answer without a boundary")
    return MultipartFiles(params["boundary"], path_for, part_limit=part_limit, on_part=check)
