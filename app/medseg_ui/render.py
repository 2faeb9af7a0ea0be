"""Slice rendering for the viewer: window/level, label overlay, radiological display, aspect.

Pure numpy + PIL, no Streamlit. Slices come from a :class:`DisplayVolume`, the image and
mask reoriented (exactly, by axis permutation and flips) to RAS with the engine's
:func:`medseg.ops.preprocess.canonical_transform`. Displayed in radiological convention: the
patient's right on the viewer's left, anterior up on axial views, superior up on coronal and
sagittal views, anterior on the left of sagittal views.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from medseg.io.colours import hex_colour, label_colour
from medseg.ops.preprocess import canonical_affine, canonical_transform, reorient_array
from medseg.volume import LabelMap, Volume
from medseg_ui.text import html_text

#: window presets: name -> (width, level); None = automatic (1st-99th percentile)
WINDOW_PRESETS: dict[str, tuple[float, float] | None] = {
    "Auto (1st–99th percentile)": None,
    "CT soft tissue (W400/L40)": (400.0, 40.0),
    "CT lung (W1500/L-600)": (1500.0, -600.0),
    "CT bone (W2000/L300)": (2000.0, 300.0),
}

#: views: name -> the RAS axis held fixed by the slice slider
VIEWS: dict[str, int] = {"Axial": 2, "Coronal": 1, "Sagittal": 0}



@dataclass(frozen=True)
class DisplayVolume:
    """Image (first channel) and optional mask on the RAS grid, with RAS voxel spacing."""

    image: np.ndarray  # X, Y[, Z] float32
    mask: np.ndarray | None
    spacing: tuple[float, ...]

    @classmethod
    def from_volume(cls, volume: Volume, labels: LabelMap | None = None) -> DisplayVolume:
        transform = canonical_transform(volume)
        image = reorient_array(volume.array[:1], transform)[0].astype(np.float32, copy=False)
        mask = None
        if labels is not None:
            mask = reorient_array(labels.array, transform)[0]
        affine = canonical_affine(volume, transform)
        n = volume.spatial_ndim
        spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :n], axis=0))
        return cls(image, mask, spacing)

    @property
    def ndim(self) -> int:
        return self.image.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape)

    def views(self) -> list[str]:
        return list(VIEWS) if self.ndim == 3 else ["Image"]

    def n_slices(self, view: str) -> int:
        return 1 if self.ndim == 2 else self.shape[VIEWS[view]]

    def slice(self, view: str, index: int) -> tuple[np.ndarray, np.ndarray | None,
                                                    tuple[float, float]]:
        """(image 2D, mask 2D or None, (row spacing, column spacing)) in display layout."""
        if self.ndim == 2:
            img, msk, (sx, sy) = self.image, self.mask, self.spacing
        else:
            axis = VIEWS[view]
            index = int(np.clip(index, 0, self.shape[axis] - 1))
            img = np.take(self.image, index, axis=axis)
            msk = None if self.mask is None else np.take(self.mask, index, axis=axis)
            sx, sy = (s for i, s in enumerate(self.spacing) if i != axis)
        # (first, second) -> rows = second axis reversed, columns = first axis reversed
        img = img.T[::-1, ::-1]
        msk = None if msk is None else msk.T[::-1, ::-1]
        return img, msk, (sy, sx)


def auto_window(image: np.ndarray) -> tuple[float, float]:
    """(width, level) spanning the 1st to 99th percentile of the image."""
    lo, hi = np.percentile(image, [1.0, 99.0])
    width = float(hi - lo) or 1.0
    return width, float(lo + width / 2)


def looks_like_ct(image: np.ndarray) -> bool:
    """Hounsfield units: air around -1000."""
    return float(np.percentile(image, 0.5)) <= -500.0


def apply_window(image: np.ndarray, width: float, level: float) -> np.ndarray:
    """uint8 grey values of ``image`` under the window (width, level)."""
    lo = level - width / 2.0
    scaled = (image.astype(np.float32) - lo) / max(float(width), 1e-6)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def display_size(shape: Sequence[int], pixel_spacing: tuple[float, float],
                 min_size: int = 320, max_size: int = 640) -> tuple[int, int]:
    """(width, height) in screen pixels giving square millimetres, scaled into bounds."""
    rows, cols = int(shape[0]), int(shape[1])
    height_mm, width_mm = rows * pixel_spacing[0], cols * pixel_spacing[1]
    scale = min_size / min(height_mm, width_mm)
    if max(height_mm, width_mm) * scale > max_size:
        scale = max_size / max(height_mm, width_mm)
    return max(1, round(width_mm * scale)), max(1, round(height_mm * scale))


def render_slice(
    image: np.ndarray,
    mask: np.ndarray | None,
    pixel_spacing: tuple[float, float],
    window: tuple[float, float],
    *,
    opacity: float = 0.5,
    visible: Sequence[int] | None = None,
    size: tuple[int, int] | None = None,
    colour: Callable[[int], tuple[int, int, int]] = label_colour,
) -> np.ndarray:
    """RGB uint8 image of one slice with the visible labels blended in at ``opacity``
    (``colour``: a label value's RGB; instances use :func:`medseg.io.colours.instance_colour`).

    The result is resized to square millimetre pixels (grey values bilinearly, labels by
    nearest neighbour, so mask edges stay exact).
    """
    width, height = size or display_size(image.shape, pixel_spacing)
    grey = Image.fromarray(apply_window(image, *window)).resize((width, height),
                                                                Image.Resampling.BILINEAR)
    rgb = np.repeat(np.asarray(grey)[..., None], 3, axis=2).astype(np.float32)
    if mask is not None and opacity > 0:
        labels = np.asarray(Image.fromarray(mask.astype(np.int32)).resize(
            (width, height), Image.Resampling.NEAREST))
        values = [int(v) for v in np.unique(labels) if v != 0]
        if visible is not None:
            values = [v for v in values if v in set(visible)]
        for value in values:
            where = labels == value
            rgb[where] = (1 - opacity) * rgb[where] + opacity * np.asarray(colour(value))
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def legend_html(label_names: Mapping[int, str], visible: Sequence[int] | None = None) -> str:
    """Small HTML legend: a colour swatch per class (hidden ones struck through)."""
    items = []
    for value, name in sorted(label_names.items()):
        if value == 0:
            continue
        style = "" if visible is None or value in visible else "text-decoration:line-through;"
        items.append(
            f'<span style="margin-right:1em;{style}"><span style="display:inline-block;'
            f"width:0.9em;height:0.9em;background:{hex_colour(value)};margin-right:0.3em;"
            f'vertical-align:middle;border-radius:2px"></span>{html_text(name)}</span>'
        )
    return "".join(items)

