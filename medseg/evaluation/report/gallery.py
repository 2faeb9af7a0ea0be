"""Slice pictures of the worst cases, at the slice where prediction and reference differ most.

For each picked case and class the label maps are read again (the prediction resampled onto
the reference grid by nearest neighbour when the grids differ), the slice along the last
index axis with the most voxels where the two masks disagree is taken, and drawn as a PNG.

With the case's image (a row's ``image_file``; ``medseg evaluate --images DIR``) the slice of
the image is drawn in grey (linearly resampled onto the reference grid when the grids differ,
windowed to the 1st-99th percentile of the cropped slice), the region where the masks disagree
is tinted (reference only, missed, FN: red; prediction only, extra, FP: blue) and both borders
are drawn on it: the reference's in red, the prediction's in blue, yellow where they coincide.
Without an image the masks alone are drawn: agreement grey, FN red, FP blue, background black.
The picture is upscaled by pixel repetition. First index axis runs left to right, second top to
bottom (array order: no world reorientation is claimed); the slice is cropped to both masks
plus a margin of :data:`MARGIN` voxels.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from medseg.errors import MedsegError
from medseg.evaluation.metrics import bounding_box
from medseg.evaluation.pairs import resample_nearest
from medseg.io import read_image, read_label_map
from medseg.volume import Volume

COLOURS = {"both": (170, 170, 170), "ref_only": (230, 40, 40), "pred_only": (40, 120, 255)}
#: border colours on the image: reference, prediction, both borders on one pixel
BORDERS = {"ref": (255, 40, 40), "pred": (40, 140, 255), "both": (255, 220, 0)}
#: opacity of the tint of the disagreeing region on the image
TINT = 0.35
#: smallest long side of a picture, in pixels
MIN_SIDE = 240
#: voxels kept around the masks when a slice is cropped
MARGIN = 6


def pick_worst(rows: Sequence[Mapping[str, Any]], k: int) -> list[Mapping[str, Any]]:
    """The ``k`` rows with the lowest finite Dice where both masks exist or one is missing
    (``both_empty`` and failed cases have nothing to draw), at most ``ceil(k / classes)``
    per class so every class is seen."""
    cand = [r for r in rows if r.get("label") is not None and r.get("status") in
            ("ok", "pred_empty", "ref_empty") and r.get("dice") is not None
            and math.isfinite(r["dice"]) and r.get("pred_file") and r.get("ref_file")]
    classes = list(dict.fromkeys(r["class"] for r in cand))
    per_class = math.ceil(k / max(1, len(classes)))
    chosen: list[Mapping[str, Any]] = []
    for name in classes:
        chosen += sorted((r for r in cand if r["class"] == name), key=lambda r: r["dice"])[
            :per_class]
    return sorted(chosen, key=lambda r: r["dice"])[:k]


def disagreement_slice(pred: np.ndarray, ref: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Index along the last axis with most disagreeing voxels, and the two 2D masks there."""
    if pred.ndim == 2:
        return 0, pred, ref
    counts = np.count_nonzero(pred != ref, axis=tuple(range(pred.ndim - 1)))
    z = int(np.argmax(counts)) if counts.any() else int(np.argmax(
        np.count_nonzero(ref | pred, axis=tuple(range(pred.ndim - 1)))))
    return z, pred[..., z], ref[..., z]


def crop_box(pred2d: np.ndarray, ref2d: np.ndarray, margin: int = MARGIN) -> tuple:
    """The box of the union of both slices plus ``margin`` voxels (whole slice when both are
    empty), as a tuple of slices."""

    box = bounding_box(pred2d | ref2d)
    if box is None:
        return tuple(slice(0, n) for n in pred2d.shape)
    return tuple(slice(max(0, b.start - margin), min(n, b.stop + margin))
                 for b, n in zip(box, pred2d.shape, strict=True))


def crop_to_masks(pred2d: np.ndarray, ref2d: np.ndarray, margin: int = MARGIN) -> tuple:
    """Both slices cropped to the box of their union plus ``margin`` voxels (whole slice
    when both are empty)."""

    box = crop_box(pred2d, ref2d, margin)
    return pred2d[box], ref2d[box]


def image_on_grid(image: Volume, ref: Volume) -> np.ndarray:
    """The first channel of ``image`` on the grid of ``ref`` (linear interpolation through
    both affines; outside the image's extent: its minimum)."""
    data = np.asarray(image.array[0], dtype=np.float32)
    if image.same_grid(ref):
        return data
    if image.spatial_ndim != ref.spatial_ndim:
        raise MedsegError(f"image is {image.spatial_ndim}D, reference {ref.spatial_ndim}D")
    n = ref.spatial_ndim
    vox = np.linalg.inv(image.affine) @ ref.affine
    return ndi.affine_transform(data, vox[:n, :n], offset=vox[:n, 3],
                                output_shape=ref.spatial_shape, order=1, mode="constant",
                                cval=float(data.min()), prefilter=False)


def _border(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour (inside the picture) outside it."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def grey(image2d: np.ndarray) -> np.ndarray:
    """A 2D image as uint8 grey, windowed to its 1st-99th percentile."""
    finite = image2d[np.isfinite(image2d)]
    lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    if hi <= lo:
        hi = lo + 1.0
    out = np.clip((np.nan_to_num(image2d, nan=lo) - lo) / (hi - lo), 0, 1)
    return (255 * out).astype(np.uint8)


def overlay_png(image2d: np.ndarray, pred2d: np.ndarray, ref2d: np.ndarray) -> bytes:
    """PNG bytes of one image slice with both masks drawn on it (see the module docstring)."""
    from PIL import Image

    g = grey(image2d).T  # first axis left to right
    p, r = pred2d.T, ref2d.T
    scale = max(1, math.ceil(MIN_SIDE / max(g.shape)))
    g, p, r = (np.repeat(np.repeat(a, scale, axis=0), scale, axis=1) for a in (g, p, r))
    rgb = np.repeat(g[..., None], 3, axis=2).astype(np.float32)
    for where, colour in ((r & ~p, COLOURS["ref_only"]), (p & ~r, COLOURS["pred_only"])):
        rgb[where] = (1 - TINT) * rgb[where] + TINT * np.asarray(colour, dtype=np.float32)
    rb, pb = _border(r), _border(p)
    rgb[rb & ~pb] = BORDERS["ref"]
    rgb[pb & ~rb] = BORDERS["pred"]
    rgb[rb & pb] = BORDERS["both"]
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def slice_png(pred2d: np.ndarray, ref2d: np.ndarray) -> bytes:
    """PNG bytes of one slice (colours of :data:`COLOURS`)."""
    from PIL import Image

    rgb = np.zeros((*pred2d.shape, 3), dtype=np.uint8)
    rgb[pred2d & ref2d] = COLOURS["both"]
    rgb[ref2d & ~pred2d] = COLOURS["ref_only"]
    rgb[pred2d & ~ref2d] = COLOURS["pred_only"]
    rgb = np.transpose(rgb, (1, 0, 2))  # first axis left to right
    scale = max(1, math.ceil(MIN_SIDE / max(rgb.shape[:2])))
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def write_gallery(rows: Sequence[Mapping[str, Any]], folder: str | Path,
                  k: int = 6) -> list[dict[str, Any]]:
    """Write the pictures of the ``k`` worst cases; return their descriptions.

    Each item: case, class, dice, slice, ``on_image`` (drawn on the row's ``image_file``),
    file (relative to the report folder) and ``png_base64`` for embedding. A case whose label
    maps cannot be read again is skipped; one whose image cannot be read is drawn without it.
    """

    folder = Path(folder)
    out: list[dict[str, Any]] = []
    for row in pick_worst(rows, k):
        try:
            pred = read_label_map(row["pred_file"])
            ref = read_label_map(row["ref_file"])
            if not ref.same_grid(pred):
                pred = resample_nearest(pred, ref)
        except MedsegError:
            continue
        value = int(row["label"])
        p, r = pred.data == value, ref.data == value
        z, p2, r2 = disagreement_slice(p, r)
        box = crop_box(p2, r2)
        image2d = _image_slice(row.get("image_file"), ref, z)
        png = (slice_png(p2[box], r2[box]) if image2d is None
               else overlay_png(image2d[box], p2[box], r2[box]))
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{row['case']}_{row['class']}")
        path = folder / f"{safe}.png"
        path.write_bytes(png)
        out.append({"case": row["case"], "class": row["class"], "dice": row["dice"],
                    "slice": f"index {z} of the last axis", "on_image": image2d is not None,
                    "n_disagree": int(np.count_nonzero(
                        p2 != r2)), "file": f"{folder.name}/{path.name}",
                    "png_base64": base64.b64encode(png).decode("ascii")})
    return out


def _image_slice(path: Any, ref: Volume, z: int) -> np.ndarray | None:
    """Slice ``z`` (last axis) of the image at ``path`` on the reference grid; None without
    an image or when it cannot be read."""
    if not path:
        return None
    try:
        data = image_on_grid(read_image(path), ref)
    except MedsegError:
        return None
    return data if data.ndim == 2 else data[..., z]
