"""Slice pictures of the worst cases, at the slice where prediction and reference differ most.

For each picked case and class the label maps are read again (the prediction resampled onto
the reference grid by nearest neighbour when the grids differ), the slice along the last
index axis with the most voxels where the two masks disagree is taken, and drawn as a PNG:
agreement grey, reference only (missed, FN) red, prediction only (extra, FP) blue, background
black, upscaled by pixel repetition. First index axis runs left to right, second top to
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

from medseg.errors import MedsegError
from medseg.evaluation.metrics import bounding_box
from medseg.evaluation.pairs import resample_nearest
from medseg.io import read_label_map

COLOURS = {"both": (170, 170, 170), "ref_only": (230, 40, 40), "pred_only": (40, 120, 255)}
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


def crop_to_masks(pred2d: np.ndarray, ref2d: np.ndarray, margin: int = MARGIN) -> tuple:
    """Both slices cropped to the box of their union plus ``margin`` voxels (whole slice
    when both are empty)."""

    box = bounding_box(pred2d | ref2d)
    if box is None:
        return pred2d, ref2d
    box = tuple(slice(max(0, b.start - margin), min(n, b.stop + margin))
                for b, n in zip(box, pred2d.shape, strict=True))
    return pred2d[box], ref2d[box]


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

    Each item: case, class, dice, slice, file (relative to the report folder) and
    ``png_base64`` for embedding. A case whose files cannot be read again is skipped.
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
        png = slice_png(*crop_to_masks(p2, r2))
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{row['case']}_{row['class']}")
        path = folder / f"{safe}.png"
        path.write_bytes(png)
        out.append({"case": row["case"], "class": row["class"], "dice": row["dice"],
                    "slice": f"index {z} of the last axis", "n_disagree": int(np.count_nonzero(
                        p2 != r2)), "file": f"{folder.name}/{path.name}",
                    "png_base64": base64.b64encode(png).decode("ascii")})
    return out
