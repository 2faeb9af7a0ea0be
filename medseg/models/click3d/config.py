"""``click3d.json``: what a click3d model folder says about itself, validated on reading, and
writing a model folder (``click3d.json`` + ``model.pt``) atomically.

Keys: ``format`` ("click3d"), ``name``, ``version``, ``architecture`` (``name``, ``params``),
``crop`` (``size`` voxels; ``coarse_spacing_mm`` of the first pass when only points are given;
``min_spacing_mm``/``max_spacing_mm`` and ``margin`` of the second: spacing =
extent * margin / size, clamped; ``threshold`` on the object probability; ``grow_passes``,
``grow_factor``, ``normalise_centre``, ``local_factor``, ``local_min_mm``,
``local_confidence``, ``focus_margin`` and ``focus_ratio``, see :class:`CropPolicy`),
``guidance`` (``channels`` in order, ``sigma_voxels`` of the click Gaussians, optionally
``similarity_clicks`` and ``similarity_radii``),
``weights`` (``file``, ``sha256``) and ``training`` (free-form facts: data, iterations,
seconds, validation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medseg.errors import InputError
from medseg.io.atomic_folder import atomic_folder
from medseg.io.checksum import sha256_file
from medseg.io.json_file import read_json
from medseg.models.click3d.guidance import LAYOUTS, SIMILARITY_CLICKS, SIMILARITY_RADIUS
from medseg.models.click3d.network import ARCHITECTURES

CONFIG_NAME = "click3d.json"
WEIGHTS_NAME = "model.pt"
FORMAT = "click3d"
#: ``crop`` keys that may be 0 (a pass or rule turned off)
ZERO_ALLOWED = ("grow_passes", "start_extent_mm", "local_factor", "local_min_mm",
                "focus_margin")


@dataclass(frozen=True)
class CropPolicy:
    size: int = 64
    coarse_spacing_mm: float = 3.0
    min_spacing_mm: float = 0.7
    max_spacing_mm: float = 4.0
    margin: float = 1.4
    threshold: float = 0.5
    #: passes at a coarser spacing while the object touches the crop's faces (it is larger
    #: than the crop): each multiplies the spacing by ``grow_factor``
    grow_passes: int = 2
    grow_factor: float = 1.6
    #: intensity quantiles from the central cube of this fraction of the crop (1: all of it)
    normalise_centre: float = 1.0
    #: points alone: 0 runs the coarse first pass; a size in mm instead starts the fine pass
    #: at an object of that extent around the clicks and lets it grow (``grow_passes``)
    start_extent_mm: float = 0.0
    #: refining a mask: a click that disagrees with it changes it only within this many times
    #: its distance to the mask's boundary (0: anywhere the crop covers; see :mod:`.local`)
    local_factor: float = 0.0
    #: ... and never within less than this radius (mm)
    local_min_mm: float = 0.0
    #: beyond that radius, a voxel still changes where the network is surer than this
    #: (1: never)
    local_confidence: float = 1.0
    #: a correcting click is looked at again on a crop of its own, this many times as wide as
    #: the ball it may change (0: never; needs ``local_factor``; see :mod:`.focus`) ...
    focus_margin: float = 0.0
    #: ... where that crop is at least this many times finer than the main one
    focus_ratio: float = 1.3

    def fine_spacing(self, extent_mm: float) -> float:
        """The second pass's spacing for an object ``extent_mm`` across (its largest axis)."""
        return float(min(max(extent_mm * self.margin / self.size, self.min_spacing_mm),
                         self.max_spacing_mm))


@dataclass(frozen=True)
class Click3dConfig:
    path: Path
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def version(self) -> str:
        return str(self.raw.get("version", ""))

    @property
    def architecture(self) -> str:
        return str(self.raw["architecture"]["name"])

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.raw["architecture"]["params"])

    @property
    def crop(self) -> CropPolicy:
        return CropPolicy(**self.raw["crop"])

    @property
    def channels(self) -> tuple[str, ...]:
        """The network's input channels, in order (one of :data:`.guidance.LAYOUTS`)."""
        return tuple(self.raw["guidance"]["channels"])

    @property
    def similarity_clicks(self) -> int:
        """How many positive clicks (the first ones in the crop) the ``similarity`` channel
        reads."""
        return int(self.raw["guidance"].get("similarity_clicks", SIMILARITY_CLICKS))

    @property
    def similarity_radii(self) -> tuple[int, ...]:
        """The radii (crop voxels) of the clicked region whose intensities the ``similarity``
        channel reads: one answer per radius that the user may pick, the first the default
        (see :mod:`.model`)."""
        return tuple(int(r) for r in self.raw["guidance"].get("similarity_radii",
                                                              [SIMILARITY_RADIUS]))

    @property
    def sigma(self) -> float:
        return float(self.raw["guidance"]["sigma_voxels"])

    @property
    def weights(self) -> Path:
        return self.path.parent / str(self.raw["weights"]["file"])

    @property
    def training(self) -> dict[str, Any]:
        value = self.raw.get("training")
        return dict(value) if isinstance(value, dict) else {}


def _need(cond: bool, path: Path, problem: str) -> None:
    if not cond:
        raise InputError(path, problem)


def _section(raw: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = raw.get(key)
    _need(isinstance(value, dict), path, f"'{key}' must be an object")
    return dict(value or {})


def validate(raw: dict[str, Any], path: Path) -> None:
    """Every problem of a ``click3d.json`` as one :class:`InputError` naming it."""
    _need(raw.get("format") == FORMAT, path, f"'format' must be {FORMAT!r}")
    _need(isinstance(raw.get("name"), str) and bool(raw["name"]), path, "'name' is missing")
    arch = _section(raw, "architecture", path)
    _need(arch.get("name") in ARCHITECTURES, path,
          f"'architecture.name' must be one of {', '.join(ARCHITECTURES)}")
    params = arch.get("params")
    _need(isinstance(params, dict)
          and all(isinstance(params.get(k), list) and params[k]
                  and all(isinstance(v, int) and v > 0 for v in params[k])
                  for k in ("channels", "strides"))
          and len(params["strides"]) == len(params["channels"]) - 1, path,
          "'architecture.params' needs 'channels' and 'strides' (one fewer) as positive "
          "integers")
    crop = _section(raw, "crop", path)
    fields = CropPolicy.__dataclass_fields__
    _need(set(crop) <= set(fields)
          and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                  and (v >= 0 if k in ZERO_ALLOWED else v > 0)
                  for k, v in crop.items()), path,
          f"'crop' must hold positive numbers among {', '.join(fields)}")
    _need(isinstance(crop.get("size", 64), int) and crop.get("size", 64) >= 16, path,
          "'crop.size' must be an integer of at least 16")
    _need(0.5 <= crop.get("local_confidence", 1.0) <= 1.0, path,
          "'crop.local_confidence' must lie between 0.5 and 1")
    _need(crop.get("focus_ratio", 1.3) >= 1.0, path, "'crop.focus_ratio' must be at least 1")
    guidance = _section(raw, "guidance", path)
    _need(guidance.get("channels") in [list(c) for c in LAYOUTS], path,
          "'guidance.channels' must be one of "
          + " or ".join(str(list(c)) for c in LAYOUTS))
    clicks = guidance.get("similarity_clicks", SIMILARITY_CLICKS)
    _need(isinstance(clicks, int) and not isinstance(clicks, bool) and clicks >= 1, path,
          "'guidance.similarity_clicks' must be a positive integer")
    radii = guidance.get("similarity_radii", [SIMILARITY_RADIUS])
    _need(isinstance(radii, list) and 1 <= len(radii) <= 8
          and all(isinstance(r, int) and not isinstance(r, bool) and 1 <= r <= 16
                  for r in radii), path,
          "'guidance.similarity_radii' must be a list of 1 to 8 integers from 1 to 16")
    sigma = guidance.get("sigma_voxels")
    _need(isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma > 0, path,
          "'guidance.sigma_voxels' must be a positive number")
    weights = _section(raw, "weights", path)
    _need(isinstance(weights.get("file"), str)
          and "/" not in weights["file"] and "\\" not in weights["file"]
          and isinstance(weights.get("sha256"), str), path,
          "'weights' needs 'file' (a name in the folder) and 'sha256'")


def read_config(folder: str | Path) -> Click3dConfig:
    """The validated ``click3d.json`` of ``folder``."""
    path = Path(folder) / CONFIG_NAME
    raw = read_json(path)
    validate(raw, path)
    return Click3dConfig(path, raw)


def check_weights(config: Click3dConfig) -> None:
    """The weights file exists and its SHA-256 is the one ``click3d.json`` records."""
    path = config.weights
    if not path.is_file():
        raise InputError(path, "the weights file is missing")
    if sha256_file(path) != config.raw["weights"]["sha256"]:
        raise InputError(path, "SHA-256 does not match click3d.json (corrupt or replaced)")


def write_model(folder: str | Path, raw: dict[str, Any], state: dict[str, torch.Tensor]) -> Path:
    """Write ``click3d.json`` (``raw`` with ``format`` and ``weights`` filled in) and
    ``model.pt`` (``state`` as float16) into ``folder``, replacing it atomically."""
    folder = Path(folder)
    with atomic_folder(folder, marker=".click3d-incomplete",
                       marker_text="being written by process {pid}\n", step="model") as build:
        weights = build / WEIGHTS_NAME
        torch.save({k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
                    for k, v in state.items()}, weights)
        doc = {**raw, "format": FORMAT,
               "weights": {"file": WEIGHTS_NAME, "sha256": sha256_file(weights)}}
        (build / CONFIG_NAME).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return folder
