"""TotalSegmentator tasks pulled, imported and checked.

``pull_task("totalseg:total")`` fetches every dataset folder the task can need
(:func:`medseg.models.totalseg.tasks.required_releases`: its parts, its crop locator and the
``--roi-subset`` locator), one release zip at a time, each under its own pull lock, into
TotalSegmentator's weights folder. The licence is said before anything is fetched; a task that
needs TotalSegmentator's licence key is refused before any request. A folder already there
and intact is left alone (``force`` replaces it); one that is partial or changed is replaced.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InputError
from medseg.hub import download, filelock, install
from medseg.hub.sources import totalseg_release_url
from medseg.io import checksum_record as record
from medseg.models.totalseg.status import MISSING, NEEDED, PARTIAL, PRESENT, folder_status
from medseg.models.totalseg.tasks import (
    LICENSED_URL,
    TASKS,
    Task,
    WeightsRelease,
    get_task,
    required_releases,
    weights_dir,
)

Say = Callable[[str], None]
#: ``progress(folder, done_bytes, total_bytes_or_None)``
Progress = Callable[[str, int, int | None], None]

#: a present folder whose files differ from its checksum record
CHANGED = "changed"


def release_files(release: WeightsRelease) -> tuple[str, ...]:
    """The files (relative to the dataset folder) nnU-Net needs to run fold 0."""
    return tuple(f"{release.trainer_folder}/{name}" for name in NEEDED)


def release_state(release: WeightsRelease, root: Path | None = None) -> tuple[str, str]:
    """``(state, why)`` of one dataset folder: the state
    :func:`medseg.models.totalseg.status.folder_status` gives it (present, missing, partial),
    or ``changed`` for a present folder whose files differ from its checksum record."""
    st = folder_status(release, root)
    if st.state == MISSING:
        return MISSING, "not downloaded"
    if st.state == PARTIAL:
        return PARTIAL, f"{st.lacking} is missing"
    try:
        record.check_installed(st.path)
    except InputError as exc:
        return (PARTIAL if "missing" in exc.problem else CHANGED), exc.problem
    return PRESENT, ("checksums recorded" if record.has_record(st.path)
                     else "installed by TotalSegmentator (no checksums recorded)")


def check_release_layout(release: WeightsRelease) -> Callable[[Path], None]:
    def check(folder: Path) -> None:
        for rel in release_files(release):
            if not (folder / rel).is_file():
                raise InputError(folder, f"the release zip of {release.folder} lacks {rel}")
    return check


@dataclass(frozen=True)
class Pulled:
    release: WeightsRelease
    path: Path
    #: "downloaded", "already present" or "imported"
    action: str
    resumed_at: tuple[int, ...] = ()


def licence_line(task: Task) -> str:
    return f"{task.model_name}: licence {task.licence} ({task.licence_url})"


def resolve(name: str) -> Task:
    """The open task called ``name``; a licensed task is refused with a pointer to
    TotalSegmentator's licence page, before any request is made."""
    task = get_task(name)
    if task.commercial:
        raise InputError(task.model_name, "this TotalSegmentator task needs a licence key; "
                                          "medseg never sends a key anywhere and does not pull "
                                          f"it (licences: {LICENSED_URL})")
    return task


def releases_to_pull(task: Task, *, roi_locator: bool = True) -> tuple[WeightsRelease, ...]:
    """What :func:`pull_task` fetches: every folder the task can need, without the
    ``--roi-subset`` locator when ``roi_locator`` is False (unless a run needs it anyway)."""
    needed = required_releases(task.name)
    if roi_locator or task.roi_locator is None:
        return needed
    always = {r.folder for r in task.parts}
    if task.crop_locator:
        always.add(task.crop_locator.release.folder)
    return tuple(r for r in needed if r.folder in always)


def pull_task(name: str, *, force: bool = False, roi_locator: bool = True,
              say: Say | None = None, progress: Progress | None = None,
              root: Path | None = None) -> list[Pulled]:
    """Pull every folder task ``name`` needs; return what was done per folder."""
    task = resolve(name)
    say = say or (lambda _line: None)
    say(licence_line(task))
    root = weights_dir() if root is None else root
    return [pull_release(r, root=root, force=force, say=say, progress=progress)
            for r in releases_to_pull(task, roi_locator=roi_locator)]


def pull_release(release: WeightsRelease, *, root: Path, force: bool = False,
                 say: Say | None = None, progress: Progress | None = None) -> Pulled:
    """Download and install one release zip, unless its folder is there and intact."""
    say = say or (lambda _line: None)
    target = release.path(root)
    url = totalseg_release_url(release.tag, release.folder)
    with filelock.held(target, say=say):
        state, why = release_state(release, root)
        if state == PRESENT and not force:
            say(f"{release.folder}: already present ({why})")
            return Pulled(release, target, "already present")
        if state in (PARTIAL, CHANGED):
            say(f"{release.folder}: {state} ({why}); replacing it")
        archive = target.with_name(f".{release.folder}.zip")
        say(f"{release.folder}: downloading {url}")
        got = download.fetch(url, archive, say=say,
                             progress=(lambda d, t: progress(release.folder, d, t))
                             if progress else None)
        try:
            install.install_zip(archive, target, source=url,
                                check=check_release_layout(release))
        except InputError as exc:
            if exc.path == str(archive):  # a bad download: name where it came from
                raise InputError(url, exc.problem) from None
            raise
        finally:
            archive.unlink(missing_ok=True)
        say(f"{release.folder}: installed in {target.parent}")
        return Pulled(release, target, "downloaded", tuple(got.resumed_at))


def _release_for_folder(folder: str) -> WeightsRelease:
    for task in TASKS.values():
        for r in required_releases(task.name):
            if r.folder == folder:
                return r
    raise InputError(folder, "is not a TotalSegmentator release medseg can run")


def import_zip(archive: str | Path, *, force: bool = False, say: Say | None = None,
               root: Path | None = None) -> Pulled:
    """Install a TotalSegmentator release zip copied from another machine (the same checks
    as a pull: layout, zip-slip, limits, checksums, one rename)."""
    archive = Path(archive)
    say = say or (lambda _line: None)
    top = install.top_folder(archive)
    if not re.fullmatch(r"Dataset\d{3}_[\w.-]+", top):
        raise InputError(archive, f"is not a TotalSegmentator release zip (its top folder is "
                                  f"{top}, not DatasetNNN_<name>)")
    try:
        release = _release_for_folder(top)
    except InputError:
        raise InputError(archive, f"holds {top}, which no medseg TotalSegmentator task "
                                  "uses") from None
    root = weights_dir() if root is None else root
    target = release.path(root)
    with filelock.held(target, say=say):
        state, why = release_state(release, root)
        if state == PRESENT and not force:
            say(f"{release.folder}: already present ({why}); use --force to replace it")
            return Pulled(release, target, "already present")
        install.install_zip(archive, target, source=f"import:{archive.name}",
                            check=check_release_layout(release))
    say(f"{release.folder}: installed in {target.parent}")
    return Pulled(release, target, "imported")


def task_folders(name: str, root: Path | None = None) -> list[Path]:
    """The dataset folders of task ``name`` (for ``verify``)."""
    return [r.path(root) for r in required_releases(resolve(name).name)]
