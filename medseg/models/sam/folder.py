"""A SAM model folder: ``sam.json`` beside the checkpoint it names.

``sam.json``::

    {"format": "sam", "variant": "medsam_vit_b", "checkpoint": "medsam_vit_b.pth",
     "name": "MedSAM ViT-B", "licence": "Apache-2.0",
     "source": "https://github.com/bowang-lab/MedSAM", "url": "<where the weights came from>",
     "sha256": "<optional: checked before the weights are read>",
     "architecture": {"decoder_heads": 8},
     "pipeline": {"intensity": "auto", "slice_axis": "axial", "propagate": true}}

``architecture`` supplies only what a state dict cannot say (head counts, see
:mod:`.config`); ``pipeline`` sets the defaults of the load options (:data:`OPTIONS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.io.json_file import read_json
from medseg.models.sam.preprocessing import INTENSITY_MODES

FORMAT = "sam"
CONFIG_NAME = "sam.json"
#: variants whose pipeline is MedSAM's (box prompts on 2-D slices at 1024 x 1024)
VARIANTS = {
    "medsam_vit_b": "MedSAM: SAM ViT-B fine-tuned on 1.5 M medical image-mask pairs",
    "medsam_tiny_random": "a small random-initialised SAM of the same architecture (tests)",
}
#: load options (``medseg segment`` flags a lead may add) and sam.json ``pipeline`` keys
OPTIONS = ("intensity", "slice_axis", "propagate")
SLICE_AXES = ("axial", "0", "1", "2")


@dataclass(frozen=True)
class SamFolder:
    path: Path
    variant: str
    checkpoint: Path
    name: str
    licence: str
    source: str
    url: str
    sha256: str | None
    architecture: dict[str, Any] = field(default_factory=dict)
    intensity: str = "auto"
    slice_axis: str = "axial"
    propagate: bool = True


def sniff(path: Path) -> bool:
    cfg = Path(path) / CONFIG_NAME
    if not cfg.is_file():
        return False
    try:
        return read_json(cfg).get("format") == FORMAT
    except InputError:
        return True  # it claims to be ours; loading reports what is wrong


def check_option(name: str, value: Any, where: Path) -> Any:
    """A pipeline option checked (``intensity``, ``slice_axis``, ``propagate``)."""
    if name == "intensity":
        if value not in INTENSITY_MODES:
            raise InputError(where, f"intensity must be one of {', '.join(INTENSITY_MODES)}, "
                                    f"got {value!r}")
        return value
    if name == "slice_axis":
        text = str(value)
        if text not in SLICE_AXES:
            raise InputError(where, f"slice_axis must be 'axial' or an array axis 0, 1, 2, got "
                                    f"{value!r}")
        return text
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    if not isinstance(value, bool):
        raise InputError(where, f"propagate must be true or false, got {value!r}")
    return value


def read_folder(path: Path, **options: Any) -> SamFolder:
    """``sam.json`` read and checked (the checkpoint must exist; it is not opened here)."""
    path = Path(path)
    cfg_path = path / CONFIG_NAME
    cfg = read_json(cfg_path)
    if cfg.get("format") != FORMAT:
        raise InputError(cfg_path, f"format must be {FORMAT!r}, got {cfg.get('format')!r}")
    variant = cfg.get("variant")
    if variant not in VARIANTS:
        raise InputError(cfg_path, f"variant {variant!r} is not one medseg runs (it runs "
                                   f"{', '.join(VARIANTS)})")
    ck = cfg.get("checkpoint")
    if not isinstance(ck, str) or not ck or Path(ck).name != ck:
        raise InputError(cfg_path, f"checkpoint must be a file name in the folder, got {ck!r}")
    if not (path / ck).is_file():
        raise InputError(path / ck, "checkpoint named in sam.json not found")
    arch = cfg.get("architecture", {})
    pipeline = cfg.get("pipeline", {})
    for key, value in (("architecture", arch), ("pipeline", pipeline)):
        if not isinstance(value, dict):
            raise InputError(cfg_path, f"{key} must be an object, got {type(value).__name__}")
    unknown = sorted(set(pipeline) - set(OPTIONS))
    if unknown:
        raise InputError(cfg_path, f"pipeline keys {', '.join(unknown)} are unknown (known: "
                                   f"{', '.join(OPTIONS)})")
    chosen = {**{"intensity": "auto", "slice_axis": "axial", "propagate": True}, **pipeline,
              **{k: v for k, v in options.items() if v is not None}}
    checked = {k: check_option(k, chosen[k], cfg_path) for k in OPTIONS}
    sha = cfg.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64):
        raise InputError(cfg_path, "sha256 must be 64 hexadecimal digits")
    return SamFolder(path=path, variant=variant, checkpoint=path / ck,
                     name=str(cfg.get("name") or path.name), licence=str(cfg.get("licence", "")),
                     source=str(cfg.get("source", "")), url=str(cfg.get("url", "")),
                     sha256=sha.lower() if sha else None, architecture=dict(arch), **checked)
