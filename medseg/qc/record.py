"""The training record: what a model's training data looked like, kept in its bundle.

Schema (every key optional, so a format fills only what its metadata knows; nnU-Net plans give
``intensity``, a MONAI bundle perhaps nothing)::

    {"cases": int,
     "classes": {name: {"min_ml": float, "max_ml": float, "present_fraction": float}},
     "intensity": [{"min", "max", "mean", "std", "p00_5", "p99_5"} per input channel],
     "extent_mm": {"min": [per axis], "max": [per axis]},
     "plausible_ml": {name or "all": [low, high]}}

* ``classes``: volume in mL of each class over the training cases where it is present, and
  the fraction of cases where it is present (background excluded).
* ``intensity``: statistics of the foreground voxels (any class > 0) per channel, in the
  image's own units (HU for CT). Omit them when the training images were synthesised with
  random contrasts (:func:`training_record` with ``intensity=False``): they would mean
  nothing.
* ``extent_mm``: the field of view along the axes of the RAS-canonical grid (the grid models
  see), smallest and largest over the cases.
* ``plausible_ml``: not measured but declared by the model's author from anatomy: the volume
  range a class (or ``"all"`` classes together) can plausibly have in a person. Training
  volumes of a few subjects of one template are a poor guide to people; this is the author's
  knowledge, written into the bundle by hand (``add_training_record.py --plausible``).

:class:`RecordBuilder` accumulates case by case; :func:`training_record` and
:func:`medseg.training.record.dataset_training_record` are the one-call forms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from medseg.ops.counts import label_counts
from medseg.ops.preprocess import canonical_affine, canonical_transform
from medseg.volume import LabelMap, Volume

#: foreground voxels sampled per case and channel for the percentiles
SAMPLE_PER_CASE = 100_000


def extent_mm(volume: Volume) -> list[float]:
    """Field of view in mm along each axis of the volume's RAS-canonical grid
    (voxel count times spacing; 2 values for 2D)."""

    transform = canonical_transform(volume)
    n = volume.spatial_ndim
    affine = canonical_affine(volume, transform)
    spacing = np.linalg.norm(affine[:3, :n], axis=0)
    shape = np.asarray(volume.spatial_shape, dtype=float)
    if transform is not None:  # the shape along canonical axes
        shape = shape[np.argsort(transform[:, 0])]
    return [round(float(s), 2) for s in shape * spacing]


def class_volumes_ml(labels: LabelMap, label_names: Mapping[int, str]) -> dict[str, float]:
    """Volume in mL of every named class (background, value 0, excluded)."""
    voxel_ml = float(np.prod(labels.spacing)) / 1000.0
    top = max([*label_names, int(labels.array.max(initial=0))]) + 1
    counts = label_counts(labels.array, minlength=top)
    return {str(name): float(counts[v]) * voxel_ml
            for v, name in sorted(label_names.items()) if v != 0}


class RecordBuilder:
    """Accumulates a training record over cases (label map, and the image unless
    ``intensity`` is False)."""

    def __init__(self, label_names: Mapping[int, str], *, intensity: bool = True,
                 seed: int = 0) -> None:
        self.label_names = {int(v): str(n) for v, n in label_names.items()}
        self.intensity = intensity
        self._rng = np.random.default_rng(seed)
        self._volumes: dict[str, list[float]] = {n: [] for v, n in
                                                 sorted(self.label_names.items()) if v}
        self._extents: list[list[float]] = []
        self._channels: list[dict[str, Any]] = []
        self.cases = 0

    def add(self, labels: LabelMap, image: Volume | None = None) -> None:
        self.cases += 1
        for name, ml in class_volumes_ml(labels, self.label_names).items():
            self._volumes[name].append(ml)
        self._extents.append(extent_mm(labels))
        if not self.intensity:
            return
        if image is None:
            raise ValueError("RecordBuilder(intensity=True).add needs the image")
        mask = labels.array[0] > 0
        if not self._channels:
            self._channels = [{"n": 0, "sum": 0.0, "sq": 0.0, "min": np.inf, "max": -np.inf,
                               "sample": []} for _ in range(image.n_channels)]
        for acc, channel in zip(self._channels, image.array, strict=True):
            fg = np.asarray(channel[mask], dtype=np.float64)
            if not fg.size:
                continue
            acc["n"] += fg.size
            acc["sum"] += float(fg.sum())
            acc["sq"] += float(np.square(fg).sum())
            acc["min"] = min(acc["min"], float(fg.min()))
            acc["max"] = max(acc["max"], float(fg.max()))
            take = min(fg.size, SAMPLE_PER_CASE)
            acc["sample"].append(self._rng.choice(fg, size=take, replace=False)
                                 if take < fg.size else fg)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cases": self.cases, "classes": {}}
        for name, vols in self._volumes.items():
            present = [v for v in vols if v > 0]
            entry: dict[str, Any] = {}
            if present:
                entry.update(min_ml=round(min(present), 3), max_ml=round(max(present), 3))
            entry["present_fraction"] = round(len(present) / max(1, len(vols)), 4)
            out["classes"][name] = entry
        if self._extents:
            ext = np.asarray(self._extents)
            out["extent_mm"] = {"min": [round(float(v), 2) for v in ext.min(0)],
                                "max": [round(float(v), 2) for v in ext.max(0)]}
        if self.intensity and self._channels and all(a["n"] for a in self._channels):
            out["intensity"] = [_channel_stats(a) for a in self._channels]
        return out


def _channel_stats(acc: dict[str, Any]) -> dict[str, float]:
    mean = acc["sum"] / acc["n"]
    std = max(0.0, acc["sq"] / acc["n"] - mean**2) ** 0.5
    lo, hi = np.percentile(np.concatenate(acc["sample"]), [0.5, 99.5])
    return {"min": round(acc["min"], 4), "max": round(acc["max"], 4), "mean": round(mean, 4),
            "std": round(std, 4), "p00_5": round(float(lo), 4), "p99_5": round(float(hi), 4)}


def training_record(cases: Iterable[tuple[Volume | None, LabelMap]],
                    label_names: Mapping[int, str], *, intensity: bool = True) -> dict[str, Any]:
    """The record of ``(image, label map)`` pairs. With ``intensity=False`` (synthesised
    training images) images may be ``None`` and only classes, extent and cases are kept."""
    builder = RecordBuilder(label_names, intensity=intensity)
    for image, labels in cases:
        builder.add(labels, image if intensity else None)
    return builder.record()
