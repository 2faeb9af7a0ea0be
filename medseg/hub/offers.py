"""What can be pulled, and how it stands on this machine (``medseg models``, the Models page).

One :class:`Offer` per TotalSegmentator task (open ones pullable; licensed ones listed with a
pointer to TotalSegmentator's licence page) and per offered MONAI model-zoo bundle: its classes,
licence, the state of every folder it needs (present / missing / partial / changed), the size
on disk, and, on request (:func:`download_size`, HEAD requests), the size of the download.
Reading the state touches only the local disk.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from medseg.errors import InputError
from medseg.hub import sam, sammed3d
from medseg.hub.download import USER_AGENT
from medseg.hub.monai_zoo import licence_text
from medseg.hub.sources import (
    MONAI_OFFERED,
    MONAI_PREFIX,
    monai_bundle_url,
    pull_models_dir,
    totalseg_release_url,
)
from medseg.hub.totalseg import MISSING, PARTIAL, PRESENT, release_state, releases_to_pull
from medseg.io import checksum_record as record
from medseg.models.totalseg.status import folder_size
from medseg.models.totalseg.tasks import LICENSED_URL, TASKS, commercial_tasks, weights_dir


@dataclass(frozen=True)
class FolderState:
    folder: str
    state: str
    why: str
    size: int
    url: str | None = None


@dataclass(frozen=True)
class Offer:
    name: str
    kind: str
    classes: int | None
    licence: str
    licence_url: str
    pullable: bool
    folders: tuple[FolderState, ...]
    modality: str = ""
    #: why a listed model is not pullable, when not for a licence key (e.g. download by hand)
    note: str = ""

    @property
    def state(self) -> str:
        """present (every folder present), missing (none there) or partial (anything else,
        changed folders included)."""
        states = {f.state for f in self.folders}
        if not self.folders or states == {MISSING}:
            return MISSING
        return PRESENT if states == {PRESENT} else PARTIAL

    @property
    def size_on_disk(self) -> int:
        return sum(f.size for f in self.folders)


def _task_offer(name: str) -> Offer:
    task = TASKS[name]
    root = weights_dir()
    folders = []
    for r in releases_to_pull(task):
        state, why = release_state(r, root)
        size = folder_size(r.path(root)) if state != MISSING else 0
        folders.append(FolderState(r.folder, state, why, size,
                                   totalseg_release_url(r.tag, r.folder)))
    return Offer(task.model_name, "TotalSegmentator task", len(task.classes), task.licence,
                 task.licence_url, not task.commercial, tuple(folders), task.modality)


def _bundle_offer(name: str) -> Offer:
    folder = pull_models_dir() / name
    if not folder.is_dir():
        state, why = MISSING, "not downloaded"
    elif record.has_record(folder):
        try:
            record.check_installed(folder)
            state, why = PRESENT, "checksums recorded"
        except InputError as exc:
            state, why = PARTIAL, exc.problem
    else:
        state, why = PRESENT, "not pulled by medseg (no checksums recorded)"
    size = folder_size(folder) if state != MISSING else 0
    licence = licence_text(folder) if state != MISSING else "stated in the bundle"
    return Offer(MONAI_PREFIX + name, "MONAI bundle", None, licence,
                 f"https://github.com/Project-MONAI/model-zoo/tree/dev/models/{name}", True,
                 (FolderState(name, state, why, size, monai_bundle_url(name)),))


def _sammed3d_offer(rel: sammed3d.Release) -> Offer:
    folder = sammed3d.target_folder(rel)
    if not folder.is_dir():
        state, why = MISSING, "not downloaded"
    else:
        try:
            record.check_installed(folder)
            state, why = PRESENT, "checksums recorded"
        except InputError as exc:
            state, why = PARTIAL, exc.problem
    size = folder_size(folder) if state != MISSING else 0
    return Offer(rel.name, "SAM-Med3D checkpoint (promptable: 3-D points)", 1,
                 sammed3d.LICENCE, sammed3d.LICENCE_URL, True,
                 (FolderState(rel.folder, state, why, size, sammed3d.release_url(rel)),))


def _sam_offer(release: sam.SamRelease) -> Offer:
    """A SAM-family checkpoint: listed with where to get it, imported by hand (not pullable)."""
    folder = pull_models_dir() / release.name
    if not folder.is_dir():
        state, why = MISSING, f"not imported: download {release.checkpoint} from {release.url}"
    elif record.has_record(folder):
        try:
            record.check_installed(folder)
            state, why = PRESENT, "checksums recorded at import"
        except InputError as exc:
            state, why = PARTIAL, exc.problem
    else:
        state, why = PRESENT, "not imported by medseg (no checksums recorded)"
    size = folder_size(folder) if state != MISSING else 0
    return Offer(sam.SAM_PREFIX + release.name, "SAM-family checkpoint (download by hand)",
                 None, release.licence, release.licence_url, False,
                 (FolderState(release.name, state, why, size, None),), release.modality,
                 note=f"{release.not_pullable} ({release.url})")


def offers() -> list[Offer]:
    """Every TotalSegmentator task (open then licensed), the offered MONAI bundles, the
    SAM-Med3D checkpoints and the SAM-family checkpoints (listed, imported by hand)."""
    out = [_task_offer(name) for name in TASKS]
    for name in commercial_tasks():
        out.append(Offer(f"totalseg:{name}", "TotalSegmentator task (licence key needed)",
                         None, "TotalSegmentator licence", LICENSED_URL, False, ()))
    out += [_bundle_offer(name) for name in MONAI_OFFERED]
    out += [_sammed3d_offer(rel) for rel in sammed3d.RELEASES.values()]
    out += [_sam_offer(r) for r in sam.RELEASES.values()]
    return out


def offer(name: str) -> Offer | None:
    return next((o for o in offers() if o.name == name), None)


def download_size(offer: Offer, *, timeout: float = 5.0) -> int | None:
    """Bytes still to download for ``offer`` (HEAD requests for its missing or partial folders;
    None when a server does not say or cannot be reached)."""
    total = 0
    for f in offer.folders:
        if f.state == PRESENT:
            continue
        if not f.url:
            return None
        req = urllib.request.Request(f.url, method="HEAD", headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
        except (urllib.error.URLError, OSError, ValueError):
            return None
        if not (length and length.isdigit()):
            return None
        total += int(length)
    return total

