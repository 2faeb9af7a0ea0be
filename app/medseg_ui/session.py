"""Per-session state: a private temporary folder, validated uploads, one-line error messages.

Each browser session gets its own folder (``tempfile.mkdtemp``, mode 0700) kept in
``st.session_state``; it is removed when the session's state is dropped (``weakref.finalize``)
or at exit. A killed app removes nothing, so every folder holds :data:`OWNER_FILE` (host,
process id and that process's start time) and :func:`sweep_stale_folders` removes, at the
next start, the folders whose process is gone; those of live sessions stay. Uploaded files are
written under a fixed name plus a validated suffix: nothing from the upload's name reaches a
path.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from medseg.errors import MedsegError

#: upload kinds -> accepted suffixes (longest first)
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".jpg", ".jpeg", ".tif", ".tiff",
                  ".zip", ".dcm")
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".png")
ZIP_SUFFIXES = (".zip",)
DEFAULT_MAX_UPLOAD_MB = 500


class UploadError(MedsegError):
    """An upload that is refused before the engine sees it (size, type)."""


#: prefix of the session folders in the temporary directory
FOLDER_PREFIX = "medseg-app-"
#: file in a session folder naming the process that owns it: "host pid start_time"
OWNER_FILE = ".owner"
#: a folder without an owner file (an older app) is stale after this many seconds
UNOWNED_MAX_AGE_S = 24 * 3600


def _start_time(pid: int) -> str:
    """The process's start time (clock ticks since boot, from /proc) or "" where unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return text.rsplit(")", 1)[-1].split()[19]


def _owner_alive(owner: str) -> bool:
    """Whether the process an owner line names still runs (another host's: assumed so)."""
    parts = owner.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False
    host, pid = parts[0], int(parts[1])
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = parts[2] if len(parts) > 2 else ""
    return not started or started == _start_time(pid)  # a reused pid is another process


def sweep_stale_folders(root: str | Path | None = None) -> list[Path]:
    """Remove session folders under ``root`` (the temporary directory) whose owner process is
    gone: a killed or crashed app. Only this user's real folders are considered (no links);
    return the removed folders."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for path in root.glob(FOLDER_PREFIX + "*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        try:
            owner = (path / OWNER_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            if time.time() - info.st_mtime < UNOWNED_MAX_AGE_S:
                continue
        except OSError:
            continue
        else:
            if _owner_alive(owner):
                continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class SessionFolder:
    """A private temporary folder removed when this object dies or at interpreter exit."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)
        (self.path / OWNER_FILE).write_text(
            f"{socket.gethostname()} {os.getpid()} {_start_time(os.getpid())}\n",
            encoding="utf-8")

    def subdir(self, name: str, *, fresh: bool = True) -> Path:
        """A child folder (emptied first when ``fresh``)."""
        path = self.path / name
        if fresh and path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cleanup(self) -> None:
        self._finalizer()


def session_folder(state: Any) -> SessionFolder:
    """The session's folder, created on first use (``state`` is ``st.session_state``)."""
    folder = state.get("_medseg_folder") if hasattr(state, "get") else None
    if folder is None or not folder.path.is_dir():
        sweep_stale_folders()
        folder = SessionFolder()
        state["_medseg_folder"] = folder
    return folder


def uploader_limit(max_mb: float) -> dict[str, Any]:
    """``st.file_uploader`` keyword for the per-widget size limit where Streamlit has it."""
    import inspect

    import streamlit as st

    if "max_upload_size" in inspect.signature(st.file_uploader).parameters:
        return {"max_upload_size": max(1, int(max_mb))}
    return {}


def validated_suffix(filename: str, allowed: tuple[str, ...]) -> str:
    """The accepted suffix of an uploaded file's name, or :class:`UploadError`."""
    lower = str(filename).lower()
    for suffix in sorted(allowed, key=len, reverse=True):
        if lower.endswith(suffix):
            return suffix
    raise UploadError(f"{display_name(filename)}: unsupported file type; accepted: "
                      f"{' '.join(allowed)}")


def display_name(filename: str) -> str:
    """The upload's base name for messages (never used in paths), shortened."""
    name = str(filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    return name if len(name) <= 80 else name[:77] + "..."


def save_upload(data: bytes, filename: str, dest_dir: Path, stem: str,
                allowed: tuple[str, ...], max_mb: float) -> Path:
    """Write an upload's bytes to ``dest_dir/stem<suffix>`` after size and type checks."""
    suffix = validated_suffix(filename, allowed)
    size_mb = len(data) / (1024 * 1024)
    if size_mb > max_mb:
        raise UploadError(f"{display_name(filename)}: file is {size_mb:.0f} MB, the limit is "
                          f"{max_mb:.0f} MB")
    if not data:
        raise UploadError(f"{display_name(filename)}: file is empty")
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{stem}{suffix}"
    path.write_bytes(data)
    return path


def error_message(exc: BaseException, hide: dict[str, str] | None = None) -> str:
    """One line for the page: the engine's message for user errors, a short note otherwise.

    ``hide`` maps server paths (the session folder) to what the user knows them as.
    """
    if isinstance(exc, MedsegError):
        text = str(exc)
    else:
        text = f"unexpected error ({type(exc).__name__}: {exc})"
    for path, shown in sorted((hide or {}).items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, shown)
    line = " ".join(text.split())
    return line if len(line) <= 400 else line[:397] + "..."
