"""The interactive viewer: NiiVue (WebGL) in a Streamlit component built into the package.

``niivue_frontend/`` holds NiiVue's browser build (npm ``@niivue/niivue`` 0.69.0, BSD-2-Clause)
and a small script speaking Streamlit's component messages, so nothing is fetched at run
time. The image and the mask are sent once as gzipped NIfTI (with an id; the browser decodes
them again only when the id changes); scrolling, crosshairs, zoom, pan and window/level then
stay in the browser. A left click sends the crosshair's position back: :func:`show` returns it
as a :class:`Click` with the voxel index on the image's own grid.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import streamlit.components.v1 as components

from medseg.io.colours import label_colour
from medseg.volume import Volume

FRONTEND = Path(__file__).resolve().parent / "niivue_frontend"
_component = components.declare_component("medseg_niivue", path=str(FRONTEND))


@dataclass(frozen=True)
class Click:
    """Where a left click put the crosshair: world position (mm, RAS), the voxel of the image
    under it (its own array index), and the values the viewer showed there."""

    mm: tuple[float, float, float]
    voxel: tuple[int, ...]
    image_value: float | None
    label_value: int | None
    number: int


def nifti_bytes(volume: Volume, *, labels: bool = False) -> bytes:
    """Gzipped NIfTI of the volume's first channel on its own grid (integers kept as the
    smallest fitting type; intensities as float32 unless they are whole numbers in int16)."""
    arr = np.asarray(volume.array[0])
    if labels:
        arr = arr.astype(np.uint8 if arr.max(initial=0) < 256 else np.uint16, copy=False)
    elif np.issubdtype(arr.dtype, np.integer) and arr.min(initial=0) >= -32768 and \
            arr.max(initial=0) <= 32767:
        arr = arr.astype(np.int16, copy=False)
    else:
        arr = arr.astype(np.float32, copy=False)
    img = nib.Nifti1Image(arr, volume.affine)
    img.header.set_xyzt_units("mm")
    if labels:
        img.header.set_intent("label")
    return gzip.compress(img.to_bytes(), compresslevel=1)


def label_table(label_names: dict[int, str]) -> list[dict[str, Any]]:
    """Each class with its display colour: medseg's (:func:`medseg.io.colours.label_colour`),
    the one the DICOM SEG recommends as CIELab."""
    return [{"value": int(v), "name": str(n), "rgb": list(label_colour(v))}
            for v, n in sorted(label_names.items()) if v != 0]


def _payload(state: Any, key: str, volume: Volume, labels: bool) -> tuple[str, str]:
    """(base64 NIfTI, id) of a volume, kept in the session per volume object."""
    cached = state.get(key)
    if cached is None or cached[0] is not volume:
        raw = nifti_bytes(volume, labels=labels)
        cached = (volume, base64.b64encode(raw).decode(), hashlib.sha1(raw).hexdigest()[:16])
        state[key] = cached
    return cached[1], cached[2]


def voxel_of(volume: Volume, mm: Any) -> tuple[int, ...]:
    """The voxel index of the image's grid nearest to a world position (mm)."""
    ijk = np.linalg.inv(volume.affine) @ np.append(np.asarray(mm, dtype=float)[:3], 1.0)
    return tuple(int(v) for v in np.rint(ijk[: volume.spatial_ndim]))


def show(state: Any, image: Volume, labels: Volume | None, label_names: dict[int, str], *,
         window: tuple[float, float], opacity: float, visible: list[int], key: str,
         height: int = 640) -> Click | None:
    """Draw the viewer; the last click (None before the first)."""
    image_b64, image_id = _payload(state, f"_nv_image_{key}", image, False)
    labels_b64, labels_id = (None, None)
    if labels is not None:
        labels_b64, labels_id = _payload(state, f"_nv_labels_{key}", labels, True)
    value = _component(image=image_b64, image_id=image_id, labels=labels_b64,
                       labels_id=labels_id, classes=label_table(label_names),
                       visible=[int(v) for v in visible], opacity=float(opacity),
                       window=[float(window[0]), float(window[1])], height=int(height),
                       radiological=True, key=key, default=None)
    if not isinstance(value, dict) or "mm" not in value:
        return None
    mm = tuple(float(x) for x in value["mm"][:3])
    voxel = value.get("voxel")
    if not (isinstance(voxel, list) and len(voxel) == 3 and all(
            isinstance(v, int) and 0 <= v < n for v, n in zip(voxel, image.spatial_shape,
                                                              strict=True))):
        voxel = voxel_of(image, mm)  # the browser sent no valid index: the nearest voxel
    return Click(mm=mm, voxel=tuple(voxel),  # type: ignore[arg-type]
                 image_value=value.get("image_value"), label_value=value.get("label_value"),
                 number=int(value.get("click", 0)))
