"""A release zip installed as a whole: checked, extracted beside its target, swapped in.

A release zip holds one top-level folder named like the model folder it installs
(TotalSegmentator's ``DatasetNNN_<name>.zip`` holds ``DatasetNNN_<name>/``, extracted into
the weights folder; a MONAI bundle zip holds ``<bundle name>/``). :func:`install_zip`:

1. refuses an archive that is not a readable zip, or that would not fit on the disk;
2. extracts it into a hidden build folder beside the target with the input checks of
   :func:`medseg.io.archive.safe_extract_zip` (zip-slip, links, member count and
   ``$MEDSEG_MAX_UNZIPPED_BYTES``, CRC), refusing anything outside the one top folder;
3. runs the caller's layout check (the files a loader needs are all there);
4. writes the checksum record (:mod:`medseg.io.checksum_record`), then swaps the build folder
   in with one rename (:func:`medseg.io.atomic_folder.atomic_folder`).

A kill at any step leaves at most the hidden build folder (removed by the next pull) and the
target as it was: never a folder that looks complete and is not.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

from medseg.errors import InputError, input_error_from_os
from medseg.io.archive import safe_extract_zip
from medseg.io.atomic_folder import atomic_folder
from medseg.io.checksum import sha256_file
from medseg.io.checksum_record import Record, write_record
from medseg.io.debughooks import pause_point
from medseg.io.guards import reason

MARKER = ".medseg-pull-incomplete"
#: room kept free beyond what the archive declares
SPARE_BYTES = 16 << 20


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def top_folder(archive: str | Path) -> str:
    """The single top-level folder of a release zip (``InputError`` when there is not one)."""
    archive = Path(archive)
    names = _names(archive)
    tops = {n.replace("\\", "/").lstrip("/").split("/", 1)[0] for n in names}
    tops.discard("")
    if len(tops) != 1 or not any("/" in n.replace("\\", "/").strip("/") for n in names):
        shown = ", ".join(sorted(tops)[:5]) or "nothing"
        raise InputError(archive, f"is not a release zip: it should hold one top folder, it "
                                  f"holds {shown}")
    return tops.pop()


def _names(archive: Path) -> list[str]:
    try:
        with zipfile.ZipFile(archive) as zf:
            return zf.namelist()
    except FileNotFoundError:
        raise InputError(archive, "file not found") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(archive, f"not a readable zip archive ({reason(exc)})") from None


def _declared_bytes(archive: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        return sum(info.file_size for info in zf.infolist())


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse, before writing, what cannot fit on ``folder``'s file system."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if needed + SPARE_BYTES > free:
        raise InputError(folder, f"not enough free space for {what}: it needs {mib(needed)}, "
                                 f"{mib(free)} are free")


def install_zip(archive: str | Path, target: str | Path, *, source: str,
                check: Callable[[Path], None] | None = None) -> Record:
    """Install the release zip ``archive`` as the folder ``target`` (replacing it as a whole
    when it exists); ``check(folder)`` raises :class:`InputError` when the extracted folder
    lacks what a loader needs. Returns the checksum record written into it."""
    archive, target = Path(archive), Path(target)
    top = top_folder(archive)
    if top != target.name:
        raise InputError(archive, f"is not a release of {target.name}: its top folder is {top}")
    check_free_space(target.parent, _declared_bytes(archive), target.name)
    digest = sha256_file(archive)
    build = None
    try:
        with atomic_folder(target, marker=MARKER, marker_text="pull in progress (pid {pid})\n",
                           step="pull") as build:
            staging = build / ".unpack"
            safe_extract_zip(archive, staging)
            for child in (staging / top).iterdir():
                os.rename(child, build / child.name)
            shutil.rmtree(staging)
            if check:
                check(build)
            pause_point("pull-extracted")
            record = write_record(build, source=source, archive_sha256=digest, skip={MARKER})
    except InputError as exc:
        if build is not None and exc.path.startswith(str(build)):
            # met inside the hidden build folder (now removed): name the model folder instead
            raise InputError(target, exc.problem) from None
        raise
    except OSError as exc:
        raise input_error_from_os(target, exc) from None
    return record
