"""SAM-Med3D checkpoints by name: ``sammed3d:turbo``.

The authors publish SAM-Med3D-turbo on Hugging Face (repository ``blueyo0/SAM-Med3D``, file
``sam_med3d_turbo.pth``; code and weights Apache-2.0). A pull downloads that one file (resumed
after a dropped connection, see :mod:`medseg.hub.download`), or fetches it from
``$MEDSEG_SAMMED3D_URL/<file>`` when that is set (a mirror, an air-gapped site's server, a
test server), checks that it loads with ``torch.load(weights_only=True)`` as a SAM-Med3D state
dict, and installs a model folder (``sammed3d.json`` beside the file, with its checksum
record) in the models folder. A file that pickles more than tensors (a training checkpoint
holding its run's arguments) is refused and nothing is installed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InputError, MedsegError, input_error_from_os
from medseg.hub import filelock
from medseg.hub.download import fetch
from medseg.hub.install import MARKER
from medseg.hub.sources import pull_models_dir
from medseg.io import checksum_record as record
from medseg.io.atomic_folder import atomic_folder
from medseg.models.sammed3d.checkpoint import read_state_dict
from medseg.models.sammed3d.folder import CONFIG, FORMAT
from medseg.models.sammed3d.network import architecture_of

PREFIX = "sammed3d:"
URL_ENV = "MEDSEG_SAMMED3D_URL"
HF_FILES = "https://huggingface.co/blueyo0/SAM-Med3D/resolve/main"
LICENCE = "Apache-2.0"
LICENCE_URL = "https://github.com/uni-medical/SAM-Med3D/blob/main/LICENSE"
SOURCE = "https://huggingface.co/blueyo0/SAM-Med3D"

Say = Callable[[str], None]
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class Release:
    key: str
    filename: str
    folder: str
    title: str
    description: str

    @property
    def name(self) -> str:
        return PREFIX + self.key


RELEASES = {
    "turbo": Release("turbo", "sam_med3d_turbo.pth", "sam_med3d_turbo", "SAM-Med3D-turbo",
                     "SAM-Med3D ViT-B fine-tuned on SA-Med3D-140K (the authors' recommended "
                     "checkpoint); 3-D point prompts on a 128^3 crop at 1.5 mm"),
}


def release(name: str) -> Release:
    key = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if key not in RELEASES:
        raise MedsegError(f"no SAM-Med3D checkpoint {name!r}: name "
                          f"{', '.join(r.name for r in RELEASES.values())}")
    return RELEASES[key]


def release_url(rel: Release) -> str:
    base = os.environ.get(URL_ENV, "").strip().rstrip("/") or HF_FILES
    return f"{base}/{rel.filename}"


def target_folder(rel: Release) -> Path:
    return pull_models_dir() / rel.folder


def _check_weights(path: Path) -> None:
    state = read_state_dict(path)  # refused pickles and corrupt files: one line naming it
    try:
        architecture_of(state)
    except ValueError as exc:
        raise InputError(path, f"is not a SAM-Med3D checkpoint ({exc})") from None


def pull(name: str, *, force: bool = False, say: Say | None = None,
         progress: Progress | None = None) -> Path:
    """Pull ``sammed3d:<key>`` into the models folder; return the model folder."""
    rel = release(name)
    say = say or (lambda _line: None)
    target = target_folder(rel)
    url = release_url(rel)
    with filelock.held(target, say=say):
        if not force and record.already_pulled(target, rel.name, say):
            return target
        say(f"{rel.name}: licence {LICENCE} ({LICENCE_URL})")
        say(f"{rel.name}: downloading {url}")
        # the download sits beside the models, so that an interrupted pull resumes
        staging = target.parent / f".{rel.folder}.download" / rel.filename
        try:
            staging.parent.mkdir(parents=True, exist_ok=True)
            fetch(url, staging, say=say,
                  progress=(lambda done, total: progress(rel.folder, done, total))
                  if progress else None)
            _check_weights(staging)
            with atomic_folder(target, marker=MARKER, step="pull",
                               marker_text="pull in progress (pid {pid})\n") as build:
                os.replace(staging, build / rel.filename)
                (build / CONFIG).write_text(json.dumps({
                    "format": FORMAT, "checkpoint": rel.filename, "name": rel.title,
                    "licence": LICENCE, "source": SOURCE, "description": rel.description,
                }, indent=2) + "\n", encoding="utf-8")
                record.write_record(build, source=url, skip={MARKER})
            staging.parent.rmdir()
        except InputError as exc:
            if exc.path == str(staging):  # refused weights are not kept for a resume
                staging.unlink(missing_ok=True)
            raise
        except OSError as exc:
            raise input_error_from_os(target, exc) from None
    say(f"{rel.name}: installed in {target}")
    return target
