"""MONAI model-zoo bundles pulled through MONAI's own ``monai.bundle.download``.

``pull_bundle("monai:spleen_ct_segmentation")`` holds the bundle's pull lock, lets
``monai.bundle.download`` fetch and extract the bundle into a hidden build folder beside the
target (from ``$MEDSEG_MONAI_ZOO_URL/<name>.zip`` when set, else MONAI's default source), then
checks what came: a bundle layout (``configs/metadata.json``), no links, no more files or bytes
than an input zip may hold (``$MEDSEG_MAX_ZIP_MEMBERS``, ``$MEDSEG_MAX_UNZIPPED_BYTES``). It
writes the checksum record and swaps the folder in with one rename, as for TotalSegmentator
releases. MONAI's extraction itself refuses zip-slip members and links; its bytes are counted
only afterwards. A pulled bundle is not trusted by being pulled: its configs run only under the
usual trust rules (:mod:`medseg.models.monai_bundle.trust`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InputError, MedsegError, input_error_from_os
from medseg.hub import filelock
from medseg.hub.install import MARKER
from medseg.hub.sources import MONAI_PREFIX, monai_bundle_url, pull_models_dir
from medseg.io import checksum_record as record
from medseg.io.atomic_folder import atomic_folder
from medseg.io.checksum import sha256_file
from medseg.io.guards import reason
from medseg.io.limits import max_unzipped_bytes, max_zip_members

Say = Callable[[str], None]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES}
#: what ``monai.bundle.download`` raises on a bad source, a bad zip or no network
_DOWNLOAD_ERRORS = (OSError, ValueError, RuntimeError, zipfile.BadZipFile,
                    NotImplementedError, KeyError)


@dataclass(frozen=True)
class PulledBundle:
    name: str
    path: Path
    #: "downloaded" or "already present"
    action: str
    licence: str = ""


def bundle_name(name: str) -> str:
    """``monai:spleen_ct_segmentation`` -> ``spleen_ct_segmentation`` (a plain folder name)."""
    bare = name[len(MONAI_PREFIX):] if name.startswith(MONAI_PREFIX) else name
    if not _NAME.fullmatch(bare):
        raise InputError(name, "not a MONAI model-zoo bundle name (letters, digits, _ . -)")
    return bare


def licence_text(folder: Path) -> str:
    """The bundle's own statement of its licence: the first line of ``LICENSE``, and the
    metadata's data licence when it has one."""
    parts = []
    try:
        first = next((ln.strip() for ln in (folder / "LICENSE").read_text(
            encoding="utf-8", errors="replace").splitlines() if ln.strip()), "")
        if first:
            parts.append(first[:120])
    except OSError:
        pass
    try:
        meta = json.loads((folder / "configs" / "metadata.json").read_text(encoding="utf-8"))
        if isinstance(meta, dict) and meta.get("data_license"):
            parts.append(f"data: {str(meta['data_license'])[:120]}")
    except (OSError, ValueError):
        pass
    return "; ".join(parts) or "no licence stated in the bundle"


def check_bundle(folder: Path, source: str | Path) -> None:
    """Refuse a downloaded bundle folder without ``configs/metadata.json``, with a link, or
    past the zip limits; errors name ``source``."""
    if not (folder / "configs" / "metadata.json").is_file():
        raise InputError(source, "holds no MONAI bundle (configs/metadata.json is missing)")
    members, total = 0, 0
    limit_members, limit_bytes = max_zip_members(), max_unzipped_bytes()
    for root, dirs, files in os.walk(folder):
        for entry in (*dirs, *files):
            if os.path.islink(os.path.join(root, entry)):
                raise InputError(source, f"the bundle holds a symbolic link ({entry}); refused")
        members += len(files)
        total += sum(os.lstat(os.path.join(root, f)).st_size for f in files)
    if members > limit_members or total > limit_bytes:
        raise InputError(source, f"the bundle holds {members} files, {total} bytes: more than "
                                 f"the limits ({limit_members} files, {limit_bytes} bytes)")


def pull_bundle(name: str, *, force: bool = False, say: Say | None = None,
                progress: bool = True, root: Path | None = None) -> PulledBundle:
    """Pull MONAI bundle ``name`` into the models folder (see :mod:`medseg.hub.sources`)."""
    bare = bundle_name(name)
    say = say or (lambda _line: None)
    root = pull_models_dir() if root is None else root
    target = root / bare
    url = monai_bundle_url(bare)
    source = url or f"{MONAI_PREFIX}{bare}"
    with filelock.held(target, say=say):
        if not force and record.already_pulled(target, bare, say):
            return PulledBundle(bare, target, "already present", licence_text(target))
        say(f"{bare}: licence as stated by the bundle, shown once it is downloaded")
        say(f"{bare}: downloading {'from ' + url if url else 'with MONAI (its default source)'}")
        build_path = None
        try:
            with atomic_folder(target, marker=MARKER, step="pull",
                               marker_text="pull in progress (pid {pid})\n") as build:
                build_path = build
                staging = build / ".download"
                _download(bare, staging, url, source, progress)
                got = staging / bare
                check_bundle(got, source)
                zipped = staging / f"{bare}.zip"
                digest = sha256_file(zipped) if zipped.is_file() else None
                for child in got.iterdir():
                    os.rename(child, build / child.name)
                shutil.rmtree(staging)
                licence = licence_text(build)
                say(f"{bare}: licence: {licence}")
                record.write_record(build, source=source, archive_sha256=digest, skip={MARKER})
        except InputError as exc:
            if build_path is not None and exc.path.startswith(str(build_path)):
                raise InputError(target, exc.problem) from None
            raise
        except OSError as exc:
            raise input_error_from_os(target, exc) from None
    say(f"{bare}: installed in {target} (its configs run only when trusted: --trust-bundle "
        "or $MEDSEG_TRUSTED_BUNDLES)")
    return PulledBundle(bare, target, "downloaded", licence)


def _download(bare: str, staging: Path, url: str | None, source: str, progress: bool) -> None:
    # monai.bundle pulls in much of MONAI; imported only when a bundle is pulled
    from monai.bundle import download as monai_download

    quiet = [logging.getLogger(n) for n in ("monai.bundle.scripts", "monai.apps")]
    levels = [log.level for log in quiet]
    # MONAI's loggers keep the stdout they first saw; what they still say goes to the
    # current stderr (stdout stays ours, and a closed earlier stream is never written to)
    streams = [(h, h.stream) for log in quiet for h in log.handlers
               if type(h) is logging.StreamHandler]
    for handler, _ in streams:  # (not setStream: it flushes the old stream, maybe closed)
        handler.stream = sys.stderr
    try:
        for log in quiet:  # MONAI logs its arguments and each step at INFO
            log.setLevel(logging.WARNING)
        if url:
            monai_download(name=bare, bundle_dir=str(staging), url=url, progress=progress)
        else:
            monai_download(name=bare, bundle_dir=str(staging), progress=progress)
    except MedsegError:
        raise
    except _DOWNLOAD_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno in _DISK:
            raise input_error_from_os(staging.parent, exc) from None
        raise InputError(source, f"monai.bundle.download failed ({reason(exc)})") from None
    finally:
        for log, level in zip(quiet, levels, strict=True):
            log.setLevel(level)
        for handler, stream in streams:
            handler.stream = stream
