"""SAM-family checkpoints in the pull catalogue: MedSAM ViT-B.

MedSAM's authors publish ``medsam_vit_b.pth`` (a plain SAM ViT-B state dict, Apache-2.0) in a
Google Drive folder linked from their README. A Drive folder is not a file URL that a plain GET
can fetch, and no checksum is published, so the entry is listed but not pullable: the user
downloads the file by hand and ``import_checkpoint`` installs it. (The Hugging Face repository
``wanglab/medsam-vit-base`` holds the same weights converted to the ``transformers`` ``SamModel``
layout, under other tensor names; it is not this format.)

``import_checkpoint`` checks that the file is a SAM state dict medseg can run (read with
``torch.load(weights_only=True)``, its network shape derived and every tensor matched), then
writes ``<models dir>/medsam_vit_b/`` (``sam.json`` with the file's sha256, the checkpoint, the
checksum record) through a hidden build folder swapped in with one rename.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InputError, MedsegError, input_error_from_os
from medseg.hub import filelock
from medseg.hub.install import MARKER, check_free_space
from medseg.hub.sources import pull_models_dir
from medseg.io import checksum_record as record
from medseg.io.atomic_folder import atomic_folder
from medseg.io.checksum import sha256_file
from medseg.models.sam.checkpoint import read_state_dict
from medseg.models.sam.config import config_from_state_dict
from medseg.models.sam.folder import CONFIG_NAME
from medseg.models.sam.network import SamNetwork, load_state

SAM_PREFIX = "sam:"
Say = Callable[[str], None]


@dataclass(frozen=True)
class SamRelease:
    name: str
    variant: str
    checkpoint: str
    title: str
    licence: str
    licence_url: str
    #: where the authors publish the weights (a page, not a file URL)
    url: str
    modality: str
    #: why ``medseg models pull`` cannot fetch it
    not_pullable: str


MEDSAM = SamRelease(
    name="medsam_vit_b", variant="medsam_vit_b", checkpoint="medsam_vit_b.pth",
    title="MedSAM ViT-B (Ma et al., Nature Communications 15, 654, 2024)",
    licence="Apache-2.0",
    licence_url="https://github.com/bowang-lab/MedSAM/blob/main/LICENSE",
    url="https://drive.google.com/drive/folders/1ETWmi4AiniJeWOt6HAsYgTjYv_fkgzoN",
    modality="CT, MR and other modalities (2-D slices)",
    not_pullable="its authors publish it in a Google Drive folder (no direct file URL, no "
                 "checksum): download medsam_vit_b.pth from that folder and import it")
RELEASES = {MEDSAM.name: MEDSAM}


def release(name: str) -> SamRelease:
    bare = name[len(SAM_PREFIX):] if name.startswith(SAM_PREFIX) else name
    if bare not in RELEASES:
        raise MedsegError(f"unknown SAM checkpoint {name!r} (known: "
                          f"{', '.join(SAM_PREFIX + n for n in RELEASES)})")
    return RELEASES[bare]


def folder_for(name: str) -> Path:
    return pull_models_dir() / release(name).name


def pull(name: str) -> None:
    """Always refuses, saying where the weights are and how to import them."""
    r = release(name)
    raise MedsegError(f"cannot pull {SAM_PREFIX}{r.name}: {r.not_pullable} ({r.url}); then "
                      f"medseg.hub.sam.import_checkpoint('{r.checkpoint}')")


def check_checkpoint(path: Path) -> None:
    """The file is a SAM state dict whose every tensor fits the network it describes."""
    state = read_state_dict(path)
    load_state(SamNetwork(config_from_state_dict(state, path)), state, path)


def import_checkpoint(path: str | Path, name: str = MEDSAM.name, *, force: bool = False,
                      say: Say | None = None) -> Path:
    """Install a downloaded checkpoint as the model folder of release ``name``."""
    path, r = Path(path), release(name)
    say = say or (lambda _line: None)
    check_checkpoint(path)
    target = pull_models_dir() / r.name
    check_free_space(target.parent, path.stat().st_size, r.name)
    digest = sha256_file(path)
    with filelock.held(target, say=say):
        if target.is_dir() and not force:
            raise InputError(target, "already exists; use --force to replace it")
        try:
            with atomic_folder(target, marker=MARKER, marker_text="import in progress "
                               "(pid {pid})\n", step="import") as build:
                shutil.copyfile(path, build / r.checkpoint)
                (build / CONFIG_NAME).write_text(json.dumps({
                    "format": "sam", "variant": r.variant, "checkpoint": r.checkpoint,
                    "name": r.name, "licence": r.licence, "source": r.title, "url": r.url,
                    "sha256": digest}, indent=2) + "\n", encoding="utf-8")
                record.write_record(build, source=f"import:{path.name}", archive_sha256=digest,
                                    skip={MARKER})
        except OSError as exc:
            raise input_error_from_os(target, exc) from None
    say(f"{r.name}: installed in {target} (licence: {r.licence})")
    return target
