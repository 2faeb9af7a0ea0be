"""WADO-RS download of one series into a folder, for medseg's DICOM reader.

The multipart response is streamed and each instance written as it arrives; the limits that
bound zip archives bound a download too (``$MEDSEG_MAX_ZIP_MEMBERS`` instances, and
``$MEDSEG_MAX_UNZIPPED_BYTES`` per response, enforced by the session of
:func:`medseg.pacs.client.open_client`). An instance of another study or series than the one
asked for is refused: the SEG would otherwise describe images it does not reference. On any
failure the files written so far are removed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medseg.io.limits import MAX_ZIP_MEMBERS_ENV, max_zip_members
from medseg.pacs.client import Server, ServerError, server_errors
from medseg.pacs.query import check_uid

#: ``progress(instances_received, instances_expected or None)``
Progress = Callable[[int, int | None], None]


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
    written: list[Path] = []
    try:
        with server_errors(server, doing):
            for ds in client.iter_series(study_instance_uid=study, series_instance_uid=series):
                if len(written) >= limit:
                    raise ServerError(server.url, f"{doing}: more than {limit} instances "
                                                  f"(${MAX_ZIP_MEMBERS_ENV})")
                got = (str(getattr(ds, "StudyInstanceUID", "")),
                       str(getattr(ds, "SeriesInstanceUID", "")))
                if got != (study, series):
                    raise ServerError(server.url, f"{doing}: the server sent an instance of "
                                                  f"series {got[1] or '?'}; refused")
                path = dest / f"{len(written):05d}.dcm"
                written.append(path)
                ds.save_as(path, enforce_file_format=True)
                if progress is not None:
                    progress(len(written), expected)
        if not written:
            raise ServerError(server.url, f"{doing}: the series holds no instances")
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return written
