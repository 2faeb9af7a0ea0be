"""The checksum record of a pulled model: ``.medseg-lock.json`` inside its folder.

Written once, when the model is installed (before the folder is swapped in, so a folder that
exists always has its record): per file the sha256, the size and the modification time. Two
checks read it:

* :func:`check_installed` (fast, at every load): every recorded file is there with its size;
  a file whose modification time moved is hashed again, so a copy that kept the bytes passes
  and an edit does not. Any difference is a one-line :class:`InputError`.
* :func:`verify` (``medseg models verify``): every file hashed again.

A folder without a record was not installed by medseg (TotalSegmentator's own download, a
hand-made folder): both checks leave it to the caller; :func:`has_record` says which it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from medseg.errors import InputError
from medseg.io.checksum import sha256_file

RECORD = ".medseg-lock.json"
FORMAT = "medseg-lock/1"
#: files in a model folder that are never part of its record
_IGNORED = {RECORD}


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Record:
    """What was installed: where from, the archive's sha256, and every file."""

    source: str
    archive_sha256: str | None
    installed: str
    files: dict[str, FileRecord]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() not in _IGNORED)


def write_record(folder: Path, *, source: str, archive_sha256: str | None = None,
                 skip: set[str] | None = None) -> Record:
    """Hash every file under ``folder`` (but ``skip``, relative posix paths) and write the
    record into it."""
    skip = skip or set()
    files: dict[str, FileRecord] = {}
    for path in _files(folder):
        rel = path.relative_to(folder).as_posix()
        if rel in skip:
            continue
        st = path.stat()
        files[rel] = FileRecord(sha256_file(path), st.st_size, st.st_mtime_ns)
    record = Record(source, archive_sha256,
                    datetime.now(timezone.utc).isoformat(timespec="seconds"), files)
    data = {"format": FORMAT, "source": source, "archive_sha256": archive_sha256,
            "installed": record.installed,
            "files": {k: vars(v) for k, v in files.items()}}
    (folder / RECORD).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return record


def has_record(folder: Path) -> bool:
    return (Path(folder) / RECORD).is_file()


def read_record(folder: str | Path) -> Record:
    path = Path(folder) / RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = {str(k): FileRecord(str(v["sha256"]), int(v["size"]), int(v["mtime_ns"]))
                 for k, v in data["files"].items()}
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        return Record(str(data["source"]), data.get("archive_sha256"), str(data["installed"]),
                      files)
    except FileNotFoundError:
        raise InputError(path, "no checksum record (not installed by medseg)") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(path, f"checksum record is unreadable ({type(exc).__name__}); "
                               "pull the model again with --force") from None


def _changed(folder: Path, rel: str, rec: FileRecord, *, full: bool) -> str | None:
    """Why ``rel`` no longer matches its record, or None."""
    path = folder / rel
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing since the pull (the model folder is partial)"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if st.st_size != rec.size:
        return f"changed since the pull (size {st.st_size}, recorded {rec.size})"
    if full or st.st_mtime_ns != rec.mtime_ns:
        try:
            digest = sha256_file(path)
        except OSError as exc:
            return f"unreadable ({exc.strerror})"
        if digest != rec.sha256:
            return "changed since the pull (sha256 differs from the record)"
    return None


def check_installed(folder: str | Path) -> None:
    """Refuse a model folder that is missing, or was pulled by medseg and has changed since.

    For model loaders (the TotalSegmentator tasks call it on every weights folder before
    loading): fast, it hashes only files whose size matches but whose modification time moved.
    Raises :class:`InputError` with one line naming the file and what is wrong, and saying to
    run ``medseg models verify`` / ``pull --force``. A folder without a record (installed by
    TotalSegmentator itself, or by hand) passes: its completeness is the caller's to judge.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "model folder not found (pull it with `medseg models pull`)")
    if not has_record(folder):
        return
    record = read_record(folder)
    for rel, rec in record.files.items():
        problem = _changed(folder, rel, rec, full=False)
        if problem:
            raise InputError(folder / rel, f"{problem}; refused (see `medseg models verify`, "
                                           "repair with `medseg models pull --force`)")


@dataclass(frozen=True)
class Verdict:
    """:func:`verify`'s result for one folder: its problems (empty when it is intact), files
    added since the pull (noted, not a failure: no loader reads them), and whether medseg
    recorded it at all."""

    folder: Path
    recorded: bool
    problems: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def already_pulled(folder: Path, name: str, say: Callable[[str], None]) -> bool:
    """Whether a pull into ``folder`` can stop: True when medseg pulled it and every file still
    matches its record; False when it is absent or damaged (said, then replaced). A folder
    medseg did not pull is an error (``--force`` replaces it)."""
    if not folder.is_dir():
        return False
    if not has_record(folder):
        raise InputError(folder, "exists and was not pulled by medseg; use --force to "
                                 "replace it")
    try:
        check_installed(folder)
    except InputError as exc:
        say(f"{name}: {exc.problem}; replacing it")
        return False
    say(f"{name}: already present ({folder})")
    return True


def verify(folder: str | Path) -> Verdict:
    """Hash every recorded file of ``folder`` again and compare it with the record."""
    folder = Path(folder)
    if not folder.is_dir():
        return Verdict(folder, False, ("model folder not found",))
    if not has_record(folder):
        return Verdict(folder, False)
    try:
        record = read_record(folder)
    except InputError as exc:
        return Verdict(folder, True, (exc.problem,))
    problems = []
    for rel, rec in sorted(record.files.items()):
        problem = _changed(folder, rel, rec, full=True)
        if problem:
            problems.append(f"{rel}: {problem}")
    present = {p.relative_to(folder).as_posix() for p in _files(folder)}
    added = tuple(sorted(present - set(record.files)))
    return Verdict(folder, True, tuple(problems), added, len(record.files))

