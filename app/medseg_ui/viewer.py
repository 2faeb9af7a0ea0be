"""The viewer widget: NiiVue (three linked planes and a 3D render, in the browser) for 3D
images, or static slice images (three orthogonal views, one for 2D; also for colouring by
instance); overlay controls (window/level, opacity, classes shown) and legend."""

from __future__ import annotations

from typing import Any

import streamlit as st

from medseg.engine.instances import Instances, find_instances
from medseg.io.colours import instance_colour, label_colour
from medseg_ui import niivue_viewer, render
from medseg_ui.text import plain

_KEYS = ("window", "opacity", "by_instance", "window_width", "window_level")
MODES = ("Interactive (NiiVue)", "Slices (static images)")
MANUAL = "Manual"


def reset(state: Any) -> None:
    """Forget slice positions and overlay settings (a new image was loaded)."""
    for key in list(state.keys()):
        if key.startswith(("slice_", "classes_")) or key in _KEYS or key in ("_display",
                                                                             "_instances"):
            del state[key]


_ORIENTATION = {"Axial": "R | L, anterior up", "Coronal": "R | L, superior up",
                "Sagittal": "A | P, superior up", "Image": ""}


def _display(state: Any, image, seg) -> tuple[render.DisplayVolume, tuple[float, float]]:
    """The reoriented image + mask and its automatic window, kept in this session's state
    for the current (image, mask)."""
    cached = state.get("_display")
    if cached is None or cached[0] is not image or cached[1] is not seg:
        disp = render.DisplayVolume.from_volume(image, None if seg is None else seg.labels)
        cached = (image, seg, disp, render.auto_window(disp.image))
        state["_display"] = cached
    return cached[2], cached[3]


def _instances(state: Any, image, seg, classes: tuple[int, ...]
               ) -> tuple[Instances, render.DisplayVolume]:
    """Connected-component instances of ``classes`` and their display, cached per
    (image, mask, classes)."""
    cached = state.get("_instances")
    if cached is None or cached[0] is not image or cached[1] is not seg or cached[2] != classes:
        # a large panoptic offset: a fragmented class may have thousands of components
        found = find_instances(seg.labels, classes, label_names=seg.label_names,
                               offset=1_000_000)
        cached = (image, seg, classes, found,
                  render.DisplayVolume.from_volume(image, found.instance_map))
        state["_instances"] = cached
    return cached[3], cached[4]


def click_text(click: niivue_viewer.Click, label_names: dict[int, str]) -> str:
    """The clicked voxel in words (plain text: class names come from a model's config)."""
    value = "-" if click.image_value is None else f"{click.image_value:.4g}"
    name = "-" if click.label_value is None else (
        label_names.get(click.label_value, "background") if click.label_value else "background")
    where = ", ".join(f"{v:.1f}" for v in click.mm)
    return (f"Clicked voxel {tuple(click.voxel)} at ({where}) mm: intensity {value}, "
            f"class {name}")


def show(state: Any, image, seg) -> Instances | None:
    """Draw the viewer; returns the instances shown when colouring by instance."""
    disp, auto = _display(state, image, seg)
    label_names = {} if seg is None else {v: n for v, n in seg.label_names.items() if v != 0}

    presets = [*render.WINDOW_PRESETS, MANUAL]
    default = 1 if render.looks_like_ct(disp.image) else 0
    mode = st.radio("Viewer", MODES, horizontal=True, key="viewer_mode",
                    help="Interactive: wheel scrolls slices, left click moves the linked "
                         "crosshairs, right drag sets window/level, Zoom/pan mode zooms with "
                         "the wheel; all in the browser. Slices: static images from the "
                         "server.")
    c1, c2, c3 = st.columns([1, 1, 2])
    preset = c1.selectbox("Window / level", presets, index=default, key="window")
    opacity = c2.slider("Mask opacity", 0.0, 1.0, 0.5, 0.05, key="opacity",
                        disabled=seg is None)
    # keyed per segmentation so a new mask starts with every class shown
    visible = c3.multiselect("Show classes", list(label_names),
                             default=list(label_names), format_func=label_names.get,
                             key=f"classes_{state.get('seg_serial', 0)}", disabled=seg is None)
    by_instance = st.checkbox("Colour by instance", key="by_instance", disabled=seg is None,
                              help="each connected component of the shown classes in its own "
                                   "colour")
    if preset == MANUAL:  # MR has no standard window: width and level typed in
        m1, m2 = st.columns(2)
        window = (m1.number_input("Window width", min_value=1e-6, value=float(auto[0]),
                                  key="window_width", format="%.4g"),
                  m2.number_input("Window level", value=float(auto[1]), key="window_level",
                                  format="%.4g"))
    else:
        window = render.WINDOW_PRESETS.get(preset) or auto
    found = None
    if by_instance and seg is not None and visible:
        found, disp = _instances(state, image, seg, tuple(sorted(visible)))
        counts = ", ".join(f"{label_names[c]}: {n}" for c, n in found.counts().items())
        st.caption(f"{len(found.table)} instances ({plain(counts)})")
        visible = None  # every instance of the chosen classes
    elif label_names:
        st.markdown(render.legend_html(label_names, visible), unsafe_allow_html=True)

    if mode == MODES[0] and image.spatial_ndim == 3 and found is None:
        click = niivue_viewer.show(
            state, image, None if seg is None else seg.labels, label_names,
            window=(window[1] - window[0] / 2, window[1] + window[0] / 2), opacity=opacity,
            visible=list(visible or []), key=f"niivue_{state.get('seg_serial', 0)}")
        if click is not None:
            st.text(click_text(click, label_names))
        return found
    views = disp.views()
    columns = st.columns(len(views))
    for view, col in zip(views, columns, strict=True):
        with col:
            n = disp.n_slices(view)
            # slices are counted from 1 in the slider and the caption alike
            number = (st.slider(f"{view} slice", 1, n, n // 2 + 1, key=f"slice_{view}")
                      if n > 1 else 1)
            img, msk, pixel = disp.slice(view, number - 1)
            rgb = render.render_slice(img, msk, pixel, window, opacity=opacity,
                                      visible=visible, colour=instance_colour
                                      if found is not None else label_colour)
            caption = f"{view} {number}/{n}" if n > 1 else view
            where = _ORIENTATION.get(view, "")
            st.image(rgb, caption=f"{caption} · {where}" if where else caption,
                     width="stretch")
    return found
