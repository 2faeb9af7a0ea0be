"""The prompt mode's picture and clicks: one slice with the segmentation, the prompt's mask
and the prompts drawn on it; a browser click or drag on it turned into a prompt.

Pure numpy + PIL, no Streamlit. Coordinates go through :class:`SliceGeometry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from medseg.prompts.types import Box, Point, Prompts
from medseg_ui import render
from medseg_ui.prompt_coords import SliceGeometry

#: the prompt's mask on the slice (gold), positive and negative points, boxes
MASK_COLOUR = (255, 200, 0)
POSITIVE_COLOUR = (0, 220, 90)
NEGATIVE_COLOUR = (240, 40, 40)
BOX_COLOUR = (0, 200, 255)
#: a press and release closer than this (display pixels, on both axes) is a click, not a box
DRAG_MIN_PX = 4


def picture(geometry: SliceGeometry, image: np.ndarray, window: tuple[float, float], *,
            mask: np.ndarray | None = None, labels: np.ndarray | None = None,
            prompts: Prompts | None = None, opacity: float = 0.5) -> np.ndarray:
    """RGB uint8 picture of the slice of ``image`` (the input's first channel, its spatial
    grid): the segmentation ``labels`` in its class colours at a third of ``opacity``, the
    prompt's ``mask`` in :data:`MASK_COLOUR`, and the prompts on this slice (points within
    half a voxel, boxes crossing it)."""
    size = render.display_size((geometry.rows, geometry.cols), geometry.spacing)
    base = None if labels is None else geometry.take(labels)
    rgb = render.render_slice(geometry.take(image), base, geometry.spacing, window,
                              opacity=opacity / 1.5, size=size)
    if mask is not None and opacity > 0:
        shown = np.asarray(Image.fromarray(geometry.take(mask).astype(np.uint8)).resize(
            size, Image.Resampling.NEAREST)) != 0
        rgb = rgb.astype(np.float32)
        rgb[shown] = (1 - opacity) * rgb[shown] + opacity * np.asarray(MASK_COLOUR)
        rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    if prompts is not None:
        rgb = _draw_prompts(rgb, geometry, prompts)
    return rgb


def _draw_prompts(rgb: np.ndarray, geometry: SliceGeometry, prompts: Prompts) -> np.ndarray:
    height, width = rgb.shape[:2]
    out = Image.fromarray(rgb)
    draw = ImageDraw.Draw(out)
    for box in prompts.boxes:
        (r0, c0, d0), (r1, c1, d1) = geometry.pixel(box.lo), geometry.pixel(box.hi)
        if min(d0, d1) > 0.5 or max(d0, d1) < -0.5:
            continue  # the box does not cross this slice
        # the box's outer edges: half a pixel beyond its corner pixels' centres
        x0, y0 = geometry.display_point(min(r0, r1) - 0.5, min(c0, c1) - 0.5, width, height)
        x1, y1 = geometry.display_point(max(r0, r1) + 0.5, max(c0, c1) + 0.5, width, height)
        draw.rectangle((x0, y0, x1, y1), outline=BOX_COLOUR, width=2)
    for point in prompts.points:
        row, col, depth = geometry.pixel(point.position)
        if abs(depth) > 0.5:
            continue
        x, y = geometry.display_point(row, col, width, height)
        colour = POSITIVE_COLOUR if point.positive else NEGATIVE_COLOUR
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill=colour, outline=(255, 255, 255))
    return np.asarray(out)


def prompt_of_event(event: Mapping[str, Any], geometry: SliceGeometry,
                    negative: bool = False) -> Point | Box:
    """The prompt a click or drag on the picture gives (``event``: streamlit-image-coordinates'
    value, ``x, y`` for a click or ``x1, y1, x2, y2`` for a press and release, with the
    picture's displayed ``width, height``): a box on this slice for a drag of at least
    :data:`DRAG_MIN_PX` whose corners lie in different rows and columns of the slice, else a
    point where the button went down (negative when ``negative``)."""
    width, height = float(event["width"]), float(event["height"])
    if "x1" in event:
        x1, y1, x2, y2 = (float(event[k]) for k in ("x1", "y1", "x2", "y2"))
    else:
        x1, y1 = x2, y2 = float(event["x"]), float(event["y"])
    start = geometry.slice_pixel(x1, y1, width, height)
    end = geometry.slice_pixel(x2, y2, width, height)
    dragged = abs(x2 - x1) >= DRAG_MIN_PX and abs(y2 - y1) >= DRAG_MIN_PX
    if dragged and start[0] != end[0] and start[1] != end[1]:
        return Box(tuple(map(float, geometry.voxel(*start))),
                   tuple(map(float, geometry.voxel(*end))))
    return Point(tuple(map(float, geometry.voxel(*start))), not negative)
