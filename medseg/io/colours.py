"""The display colour of each label value, shared by the UI overlays and the DICOM SEG's
recommended display colours (so a PACS viewer shows the same colours as medseg)."""

from __future__ import annotations

import colorsys

#: distinct colours (tab10-like), label 1 first; background has none
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (170, 110, 40),
)


def label_colour(value: int) -> tuple[int, int, int]:
    """The RGB colour of a label value (stable across pages, cases and outputs)."""
    return PALETTE[(int(value) - 1) % len(PALETTE)]


def hex_colour(value: int) -> str:
    return "#{:02x}{:02x}{:02x}".format(*label_colour(value))


def instance_colour(value: int) -> tuple[int, int, int]:
    """The colour of an instance (connected component) id: muted hues spaced by the golden
    angle, unlike the saturated class palette, so an instance is never mistaken for a class."""
    hue = (int(value) * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.4, 0.8)  # RGB distance >= 70 from every class colour
    return round(r * 255), round(g * 255), round(b * 255)
