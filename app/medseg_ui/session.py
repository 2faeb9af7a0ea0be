"""Per-session state: a private temporary folder, validated uploads, one-line error messages.

Each browser session gets its own folder (``tempfile.mkdtemp``) kept in ``st.session_state``;
it is removed when the session's state is dropped (``weakref.finalize``) or at exit. Uploaded
files are written under a fixed name plus a validated suffix: nothing from the upload's name
reaches a path.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

from medseg.errors import MedsegError

#: upload kinds -> accepted suffixes (longest first)
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".jpg", ".jpeg", ".tif", ".tiff",
                  ".zip")
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".png")
ZIP_SUFFIXES = (".zip",)
DEFAULT_MAX_UPLOAD_MB = 500


class UploadError(MedsegError):
    """An upload that is refused before the engine sees it (size, type)."""


class SessionFolder:
    """A private temporary folder removed when this object dies or at interpreter exit."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="medseg-app-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

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
