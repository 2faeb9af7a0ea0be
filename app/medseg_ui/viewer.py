"""The slice viewer widget: three orthogonal views (one for 2D), overlay controls, legend."""

from __future__ import annotations

from typing import Any

import streamlit as st

from medseg.engine.instances import Instances, find_instances
from medseg_ui import render
from medseg_ui.text import plain

_KEYS = ("window", "opacity", "by_instance")


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


def show(state: Any, image, seg) -> Instances | None:
    """Draw the viewer; returns the instances shown when colouring by instance."""
    disp, auto = _display(state, image, seg)
    label_names = {} if seg is None else {v: n for v, n in seg.label_names.items() if v != 0}

    presets = list(render.WINDOW_PRESETS)
    default = 1 if render.looks_like_ct(disp.image) else 0
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
    window = render.WINDOW_PRESETS[preset] or auto
    found = None
    if by_instance and seg is not None and visible:
        found, disp = _instances(state, image, seg, tuple(sorted(visible)))
        counts = ", ".join(f"{label_names[c]}: {n}" for c, n in found.counts().items())
        st.caption(f"{len(found.table)} instances ({plain(counts)})")
        visible = None  # every instance of the chosen classes
    elif label_names:
        st.markdown(render.legend_html(label_names, visible), unsafe_allow_html=True)

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
                                      visible=visible)
            caption = f"{view} {number}/{n}" if n > 1 else view
            where = _ORIENTATION.get(view, "")
            st.image(rgb, caption=f"{caption} · {where}" if where else caption,
                     width="stretch")
    return found
