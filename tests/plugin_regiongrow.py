"""A promptable model format for tests: region growing from the clicks, nothing learned.

A folder holding ``regiongrow.json`` (``{"tolerance": 50, "name": "object"}``) is a model that
takes points and boxes. The object is what the positive clicks reach through voxels whose
intensity lies within ``tolerance`` of some positive click's own voxel (6-connected), inside
the union of the boxes when boxes are given (a box alone seeds from its centre). Negative
clicks compete for the same voxels: every reachable voxel goes to the click that reaches it in
the fewest steps (ties to the negative one), so a negative click cuts off the part nearest it.
It follows the model protocol like any format: ``prepare`` (image and prompts), ``predict``
(background/object probabilities on the input grid), ``restore``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pluggy
import torch
from scipy import ndimage

from medseg.errors import InputError
from medseg.models.base import ModelInfo, Prediction
from medseg.specs import ModelFormatSpec

hookimpl = pluggy.HookimplMarker("medseg")
MODEL_FILE = "regiongrow.json"


def sniff(path: Path) -> bool:
    return (Path(path) / MODEL_FILE).is_file()


def describe(path: Path) -> ModelInfo:
    try:
        cfg = json.loads((Path(path) / MODEL_FILE).read_text())
        tolerance = float(cfg["tolerance"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(Path(path) / MODEL_FILE, f"not a region-growing model ({exc})") from None
    return ModelInfo(name=Path(path).name, format="regiongrow",
                     labels={"background": 0, str(cfg.get("name", "object")): 1},
                     source=str(path), details={"tolerance": tolerance},
                     prompts=("point", "box"))


def _voxel(position) -> tuple[int, ...]:
    return tuple(round(c) for c in position)


def grow(image: np.ndarray, prompts, tolerance: float) -> np.ndarray:
    """Boolean object mask of ``image`` (spatial array) for voxel ``prompts``."""
    allowed = np.ones(image.shape, bool)
    seeds = [_voxel(p.position) for p in prompts.points if p.positive]
    if prompts.boxes:
        allowed[:] = False
        for box in prompts.boxes:
            sl = tuple(slice(int(np.ceil(min(a, b))), int(np.floor(max(a, b))) + 1)
                       for a, b in zip(box.lo, box.hi, strict=True))
            allowed[sl] = True
            if not seeds:
                seeds.append(_voxel((a + b) / 2 for a, b in zip(box.lo, box.hi, strict=True)))
    if not seeds:
        return np.zeros(image.shape, bool)
    near = np.zeros(image.shape, bool)
    for s in seeds:
        near |= np.abs(image - image[s]) <= tolerance
    domain = near & allowed
    negatives = [_voxel(p.position) for p in prompts.points if not p.positive]
    pos, neg = np.zeros(image.shape, bool), np.zeros(image.shape, bool)
    for s in seeds:
        pos[s] = domain[s]
    for s in negatives:
        neg[s], pos[s] = True, False
    taken = pos | neg
    while True:  # one step per round for both sides; a voxel reached by both goes negative
        grow_neg = ndimage.binary_dilation(neg) & domain & ~taken
        grow_pos = ndimage.binary_dilation(pos) & domain & ~taken & ~grow_neg
        if not grow_neg.any() and not grow_pos.any():
            return pos
        neg |= grow_neg
        pos |= grow_pos
        taken |= grow_neg | grow_pos


class RegionGrowModel:
    def __init__(self, info: ModelInfo) -> None:
        self.info = info

    def prepare(self, volume, settings):
        return np.asarray(volume.array[0], dtype=np.float32), settings.prompts

    def predict(self, prepared, settings) -> torch.Tensor:
        image, prompts = prepared
        fg = torch.from_numpy(grow(image, prompts, self.info.details["tolerance"])).float()
        return torch.stack([1 - fg, fg])

    def restore(self, prepared, probabilities: torch.Tensor, settings) -> Prediction:
        probs = probabilities.numpy() if settings.probabilities else None
        return Prediction(probabilities.argmax(0).numpy().astype(np.uint8), probs)


def load(path: Path, *, registry=None, device=None, **options) -> RegionGrowModel:
    return RegionGrowModel(describe(path))


@hookimpl
def medseg_register_model_formats() -> list[ModelFormatSpec]:
    return [ModelFormatSpec("regiongrow", sniff, load, describe,
                            "regiongrow.json folder: region growing from clicks (tests)",
                            priority=100)]
