"""A promptable model for the UI tests: region growing from the clicks (no learning).

A folder holding ``regiongrow_ui.json`` (``{"tolerance": 0.25}``) is a model of the format
``regiongrow_ui``; a list of tolerances (``{"tolerance": [0.25, 1.0]}``) makes it offer one
answer per tolerance (``ModelInfo.answers``; ``Prompts.answer`` picks one). It takes points
and boxes (:mod:`medseg.prompts`, voxel indices of the input) and segments, on the input's own
grid:

* from each positive point outside the boxes, the voxels 6-connected to it whose intensity
  lies within ``tolerance`` x (99th - 1st percentile of the image) of the clicked voxel's;
* from each box, the same from the positive points inside it (from its centre when there is
  none), only inside the box (a 2-D box, flat on one axis, bounds the two other axes);
* each negative point removes the part of that mask, connected to it, that lies nearer to it
  than to every seed.

It follows the model protocol of :mod:`medseg.models.base` (prepare, predict, restore) and is
registered like any format plugin: copy this file into ``$MEDSEG_PLUGINS_DIR`` (single-file
plugin) or register the module on a plugin manager. It is self-contained for that reason.
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
from medseg.volume import Volume

FORMAT = "regiongrow_ui"
CONFIG_FILE = "regiongrow_ui.json"


def sniff(path: Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def describe(path: Path) -> ModelInfo:
    file = Path(path) / CONFIG_FILE
    try:
        cfg = json.loads(file.read_text())
        given = cfg.get("tolerance", 0.25)
        tolerances = [float(t) for t in (given if isinstance(given, list) else [given])]
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(file, f"not a region-growing model ({exc})") from None
    for tolerance in tolerances:
        if not 0 < tolerance <= 1:
            raise InputError(file, f"tolerance {tolerance} is not in (0, 1]")
    if not tolerances:
        raise InputError(file, "no tolerance")
    return ModelInfo(name=Path(path).name, format=FORMAT,
                     labels={"background": 0, "object": 1}, source=str(path),
                     details={"tolerance": tolerances[0], "tolerances": tolerances},
                     prompts=("point", "box"), answers=len(tolerances))


def _index(position, shape) -> tuple[int, ...]:
    return tuple(int(np.clip(round(float(p)), 0, n - 1)) for p, n in zip(position, shape,
                                                                         strict=True))


def _box_region(boxes, shape) -> np.ndarray:
    """Voxels inside every box (all voxels when there is none)."""
    inside = np.ones(shape, dtype=bool)
    for box in boxes:
        flat = box.flat_axis
        slices = tuple(slice(None) if axis == flat else
                       slice(int(np.floor(lo + 0.5)), int(np.floor(hi + 0.5)) + 1)
                       for axis, (lo, hi) in enumerate(zip(box.lo, box.hi, strict=True)))
        keep = np.zeros(shape, dtype=bool)
        keep[slices] = True
        inside &= keep
    return inside


def _grow(image: np.ndarray, seed: tuple[int, ...], tolerance: float,
          allowed: np.ndarray) -> np.ndarray:
    """The voxels of ``allowed`` within ``tolerance`` of the seed's intensity, connected to it."""
    similar = allowed & (np.abs(image - image[seed]) <= tolerance)
    if not similar[seed]:
        return np.zeros(image.shape, dtype=bool)
    components, _n = ndimage.label(similar)
    return components == components[seed]


def _nearer(shape, seed, others) -> np.ndarray:
    """Voxels nearer (in voxel units) to ``seed`` than to every point of ``others``."""
    grid = np.indices(shape, dtype=np.float32)
    own = sum((g - s) ** 2 for g, s in zip(grid, seed, strict=True))
    out = np.ones(shape, dtype=bool)
    for other in others:
        out &= own < sum((g - s) ** 2 for g, s in zip(grid, other, strict=True))
    return out


def region_grow(image: np.ndarray, prompts, tolerance: float) -> np.ndarray:
    """The mask the prompts select (see the module docstring); ``tolerance`` as a fraction of
    the image's 1st-99th percentile range."""
    lo, hi = np.percentile(image, [1.0, 99.0])
    tol = tolerance * max(float(hi - lo), 1e-6)
    shape = image.shape
    clicks = [_index(p.position, shape) for p in prompts.points if p.positive]
    everywhere = np.ones(shape, dtype=bool)
    grown: list[tuple[tuple[int, ...], np.ndarray]] = []  # (seed, where it may grow)
    boxes = [_box_region([box], shape) for box in prompts.boxes]
    for box, inside in zip(prompts.boxes, boxes, strict=True):
        seeds = [c for c in clicks if inside[c]] or [
            _index([(a + b) / 2 for a, b in zip(box.lo, box.hi, strict=True)], shape)]
        grown += [(seed, inside) for seed in seeds]
    grown += [(c, everywhere) for c in clicks if not any(inside[c] for inside in boxes)]
    mask = np.zeros(shape, dtype=bool)
    for seed, allowed in grown:
        mask |= _grow(image, seed, tol, allowed)
    seeds = [seed for seed, _allowed in grown]
    for point in prompts.points:
        if not point.positive:
            seed = _index(point.position, shape)
            mask &= ~_grow(image, seed, tol, mask & _nearer(shape, seed, seeds))
    return mask


class RegionGrowModel:
    """The model protocol over :func:`region_grow`; the model grid is the input grid."""

    def __init__(self, info: ModelInfo) -> None:
        self.info = info

    def prepare(self, volume: Volume, settings) -> tuple[np.ndarray, object]:
        return np.asarray(volume.array[0], dtype=np.float32), settings.prompts

    def predict(self, prepared, settings) -> torch.Tensor:
        image, prompts = prepared
        tolerance = self.info.details["tolerances"][prompts.answer]
        fg = torch.from_numpy(region_grow(image, prompts, tolerance).astype(np.float32))
        return torch.stack([1 - fg, fg])

    def restore(self, prepared, probabilities: torch.Tensor, settings) -> Prediction:
        probs = probabilities.numpy() if settings.probabilities else None
        return Prediction(probabilities.argmax(0).numpy().astype(np.uint8), probs)


def load(path: Path, *, registry=None, device=None, **options) -> RegionGrowModel:
    return RegionGrowModel(describe(path))


def write_model(folder: Path, tolerance: float | list[float] = 0.25) -> Path:
    """A model folder of this format (for tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps({"tolerance": tolerance}))
    return folder


@hookimpl
def medseg_register_model_formats() -> list[ModelFormatSpec]:
    return [ModelFormatSpec(FORMAT, sniff, load, describe,
                            "regiongrow_ui.json folder: region growing from clicks (UI tests)",
                            priority=100)]
