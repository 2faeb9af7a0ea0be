"""A promptable model format as a third party would add it: region growing from clicks.

Not learned and not shipped; the tests use it to drive prompts through the CLI, the engine,
the UI and the interactive evaluation before (and beside) a trained promptable model. A model
folder holds ``regiongrow.json`` (``{"format": "regiongrow", "tolerance": 0.25}``): the object is
the voxels connected to a positive click whose intensity lies within ``tolerance`` x (the
image's 1-99 percentile range) of the mean intensity at the positive clicks; voxels nearer to a
negative click than to every positive one are removed; boxes bound it (a 3-D box in all axes, a
2-D box in its in-plane axes), and a box without points seeds at its centre.

Copy this file into a plugins folder (``MEDSEG_PLUGINS_DIR``) and write a model folder with
:func:`write_model`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from medseg.errors import InputError
from medseg.hookspecs import hookimpl
from medseg.models.base import ModelInfo, Prediction
from medseg.specs import ModelFormatSpec

CONFIG = "regiongrow.json"


def write_model(folder: Path, tolerance: float = 0.25) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG).write_text(json.dumps({"format": "regiongrow", "tolerance": tolerance}))
    return folder


def _sniff(path: Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def _config(path: Path) -> dict:
    try:
        doc = json.loads((Path(path) / CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(Path(path) / CONFIG, f"cannot be read ({exc})") from None
    if doc.get("format") != "regiongrow":
        raise InputError(Path(path) / CONFIG, "is not a regiongrow model")
    return doc


def _describe(path: Path) -> ModelInfo:
    _config(path)
    return ModelInfo(name=Path(path).name, format="regiongrow",
                     labels={"background": 0, "object": 1}, prompts=("point", "box"),
                     source=str(path))


class RegionGrow:
    def __init__(self, path: Path) -> None:
        self.info = _describe(path)
        self.tolerance = float(_config(path).get("tolerance", 0.25))

    def prepare(self, volume, settings):
        return volume.array[0].astype(np.float32), settings.prompts

    def predict(self, prepared, settings) -> torch.Tensor:
        image, prompts = prepared
        bound = np.ones(image.shape, bool)
        for box in prompts.boxes:
            lo = np.floor(box.lo).astype(int)
            hi = np.ceil(box.hi).astype(int) + 1
            sl = [slice(a, b) for a, b in zip(lo, hi, strict=True)]
            if box.flat_axis is not None:
                sl[box.flat_axis] = slice(None)
            inside = np.zeros(image.shape, bool)
            inside[tuple(sl)] = True
            bound &= inside
        positive = [np.round(p.position).astype(int) for p in prompts.points if p.positive]
        negative = [np.round(p.position).astype(int) for p in prompts.points if not p.positive]
        if not positive:
            positive = [np.round((np.asarray(b.lo) + np.asarray(b.hi)) / 2).astype(int)
                        for b in prompts.boxes]
        lo, hi = np.percentile(image, [1, 99])
        mean = float(np.mean([image[tuple(p)] for p in positive])) if positive else 0.0
        similar = (np.abs(image - mean) <= self.tolerance * max(hi - lo, 1e-6)) & bound
        comps, _ = ndimage.label(similar)
        keep = {int(comps[tuple(p)]) for p in positive} - {0}
        mask = np.isin(comps, sorted(keep))
        if negative and positive:
            grid = np.indices(image.shape).reshape(image.ndim, -1).T
            def nearest(points):
                return np.min([((grid - q) ** 2).sum(1) for q in points], axis=0)
            mask &= (nearest(positive) <= nearest(negative)).reshape(image.shape)
        fg = torch.from_numpy(mask.astype(np.float32))
        return torch.stack([1 - fg, fg])

    def restore(self, prepared, probabilities, settings) -> Prediction:
        return Prediction(channels=probabilities.argmax(0).numpy().astype(np.uint8))


def _load(path: Path, *, registry=None, device=None, **options) -> RegionGrow:
    return RegionGrow(path)


@hookimpl
def medseg_register_model_formats() -> list[ModelFormatSpec]:
    return [ModelFormatSpec(name="regiongrow", sniff=_sniff, load=_load, describe=_describe,
                            description="region growing from clicks (test plugin)")]
