"""Summaries of images for ``medseg info`` and the UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medseg.io import read_image
from medseg.io.nifti import nifti_label_names
from medseg.registry import Registry
from medseg.volume import Volume


def looks_like_labels(volume: Volume, max_labels: int = 64) -> bool:
    """Integer single-channel data with few distinct non-negative values."""
    arr = volume.array
    if volume.n_channels != 1 or arr.dtype.kind not in "iub":
        return False
    if arr.min() < 0:
        return False
    return np.unique(arr[:, ::4, ::4, ...] if arr.ndim == 4 else arr).size <= max_labels and \
        np.unique(arr).size <= max_labels


def describe_volume(volume: Volume, names: dict[int, str] | None = None) -> dict[str, Any]:
    """Geometry and intensities; for a label map its classes (background left out) with
    their ``names`` where known."""
    arr = volume.array
    info: dict[str, Any] = {
        "shape": list(volume.spatial_shape),
        "channels": volume.n_channels,
        "dtype": str(arr.dtype),
        "spacing_mm": [round(s, 6) for s in volume.spacing],
        "origin_mm": [round(o, 6) for o in volume.origin],
        "orientation": volume.orientation,
        "direction": np.round(volume.direction, 6).tolist(),
        "intensity_range": [float(arr.min()), float(arr.max())],
    }
    if looks_like_labels(volume):
        values, counts = np.unique(arr, return_counts=True)
        voxel_ml = float(np.prod(volume.spacing)) / 1000.0
        names = names or {}
        info["labels"] = {
            str(int(v)): {"voxels": int(c), "volume_ml": round(int(c) * voxel_ml, 4),
                          **({"name": names[int(v)]} if int(v) in names else {})}
            for v, c in zip(values, counts, strict=True) if v != 0
        }
    return info


def describe_file(path: str | Path, registry: Registry, **options: Any) -> dict[str, Any]:
    path = Path(path)
    volume = read_image(path, registry=registry, **options)
    names = {}
    if path.is_file() and path.name.lower().endswith((".nii", ".nii.gz")):
        names = nifti_label_names(path)  # the class names medseg writes into its masks
    return {"path": str(path), "format": _format_name(path, registry),
            **describe_volume(volume, names)}


def _format_name(path: Path, registry: Registry) -> str:
    """The name of the reader that recognises ``path`` (as :func:`read_image` picks it).

    The summary holds geometry and intensities only: no DICOM attribute (patient name, ID,
    dates, accession) is ever copied into it.
    """
    for reader in registry.readers_by_priority():
        try:
            if reader.sniff(path):
                return reader.name
        except Exception:  # a plugin sniffer's bug: as in read_image, not recognised
            continue
    return "unknown"
