"""A SAM-Med3D model folder: ``sammed3d.json`` beside the authors' checkpoint.

``sammed3d.json``::

    {"format": "sammed3d", "checkpoint": "sam_med3d_turbo.pth",
     "name": "SAM-Med3D-turbo", "licence": "Apache-2.0",
     "source": "https://huggingface.co/blueyo0/SAM-Med3D", "description": "..."}

Only ``format`` and ``checkpoint`` are required; the checkpoint is a file inside the folder.
The network's sizes come from the checkpoint itself (:mod:`.network`); the pipeline's
constants (1.5 mm, the crop) are those of the authors' inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InputError
from medseg.io.json_file import read_json

FORMAT = "sammed3d"
CONFIG = "sammed3d.json"
#: the authors' inference resamples to 1.5 mm isotropic (``validate_paired_img_gt``)
SPACING_MM = (1.5, 1.5, 1.5)
#: their crop, also the published networks' input size (checked against the checkpoint)
CROP = 128


@dataclass(frozen=True)
class Definition:
    folder: Path
    checkpoint: Path
    name: str
    licence: str
    source: str
    description: str


def sniff(path: Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def _text(doc: dict, key: str, path: Path, default: str = "") -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise InputError(path, f"{key!r} must be a string, not {type(value).__name__}")
    return value


def read_definition(path: Path) -> Definition:
    folder = Path(path)
    config = folder / CONFIG
    doc = read_json(config)
    if doc.get("format") != FORMAT:
        raise InputError(config, f"'format' must be {FORMAT!r}, not {doc.get('format')!r}")
    name = _text(doc, "checkpoint", config)
    if not name:
        raise InputError(config, "names no 'checkpoint' file")
    checkpoint = (folder / name).resolve()
    if folder.resolve() not in checkpoint.parents:
        raise InputError(config, f"checkpoint {name!r} is outside the model folder")
    if not checkpoint.is_file():
        raise InputError(checkpoint, "checkpoint not found (named by sammed3d.json)")
    return Definition(folder=folder, checkpoint=checkpoint,
                      name=_text(doc, "name", config, folder.name) or folder.name,
                      licence=_text(doc, "licence", config, "not stated"),
                      source=_text(doc, "source", config),
                      description=_text(doc, "description", config))
