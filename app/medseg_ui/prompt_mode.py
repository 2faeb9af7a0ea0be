"""The Segment page's prompt mode, for a promptable model (``ModelInfo.prompts``).

One slice (plane and slice chosen) is shown as a clickable picture
(``streamlit-image-coordinates``): a click adds a point (positive, or negative with the
toggle), a drag draws a box on that slice. Each prompt goes to the engine's
:class:`~medseg.engine.interactive.PromptSession`, whose mask is drawn over the slice at the
next run; Undo and Clear work on the session. Where the model offers several answers to a
prompt (``ModelInfo.answers``: a click can mean a pocket or what surrounds it), a row of
buttons picks one for the last prompt (the next prompt refines the mask picked). The result
gets a name and is put into the page's segmentation (:func:`medseg.engine.mask_edit.apply_mask`:
a new class, added to a class or removed from it) or stands alone; :func:`show` returns that
new segmentation and the page keeps it, views it and offers its downloads like a model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from medseg.engine.interactive import PromptSession
from medseg.engine.mask_edit import apply_mask
from medseg.engine.segmenter import Segmentation
from medseg.prompts.types import Box
from medseg.volume import Volume
from medseg_ui import engine, prompt_canvas, render
from medseg_ui.prompt_coords import SliceGeometry
from medseg_ui.session import error_message
from medseg_ui.text import plain

#: the picture's widget key; its value is the last click or drag
CANVAS_KEY = "prompt_canvas"
#: the answer buttons' key (a model offering several answers to a prompt)
ANSWER_KEY = "prompt_answer"
#: how the result is used: option -> apply_mask's ``how`` ("alone": a segmentation of its own)
USES = {"New class": "new", "Add to a class": "add", "Remove from a class": "remove",
        "On its own": "alone"}


@dataclass(frozen=True)
class Added:
    """The segmentation the prompt mode made, the models it is shown as made by (``abdomen_ct +
    click3d``), and the model whose DICOM segment codes its SEG uses."""

    seg: Segmentation
    made_by: str
    codes_model: str


def reset(state: Any) -> None:
    """Forget the prompts and the prompt mode's positions (a new image was loaded)."""
    for key in list(state.keys()):
        if key.startswith("prompt_") and key not in ("prompt_name", "prompt_negative"):
            del state[key]


def session(state: Any, image: Volume, model: str, trust: bool) -> PromptSession:
    """The session for this image and model (a new one when either changed)."""
    cached = state.get("prompt_session")
    if cached is None or cached[0] is not image or cached[1] != model:
        started = PromptSession(engine.segmenter(model, trust=trust), image,
                                where=state.get("image_name", "input"))
        cached = (image, model, started)
        state["prompt_session"] = cached
    return cached[2]


def _window(state: Any, image: Volume) -> tuple[float, float]:
    """(width, level): the CT soft-tissue window for CT, else the 1st-99th percentile."""
    cached = state.get("prompt_window")
    if cached is None or cached[0] is not image:
        grey = np.asarray(image.array[0], dtype=np.float32)
        ct = render.WINDOW_PRESETS["CT soft tissue (W400/L40)"]
        window = ct if render.looks_like_ct(grey) and ct else render.auto_window(grey)
        cached = (image, window)
        state["prompt_window"] = cached
    return cached[1]


def geometry(state: Any, image: Volume) -> SliceGeometry:
    """The plane and slice chosen (drawn as widgets)."""
    if image.spatial_ndim == 2:
        return SliceGeometry.of(image, "Image", 0)
    view = st.radio("Plane", list(render.VIEWS), horizontal=True, key="prompt_view")
    n = SliceGeometry.of(image, view, 0).n_slices
    number = st.slider(f"{view} slice", 1, n, n // 2 + 1, key=f"prompt_slice_{view}") \
        if n > 1 else 1
    return SliceGeometry.of(image, view, number - 1)


def handle(state: Any, event: dict | None, where: SliceGeometry, prompts: PromptSession,
           hide: dict[str, str]) -> bool:
    """Give the session the prompt of a new click or drag (each event once, by its time);
    True when there was one (the page redraws)."""
    if not event or event.get("unix_time") == state.get("prompt_last_event"):
        return False
    state["prompt_last_event"] = event.get("unix_time")
    try:
        prompt = prompt_canvas.prompt_of_event(event, where,
                                               negative=bool(state.get("prompt_negative")))
        if isinstance(prompt, Box):
            prompts.add_box(prompt.lo, prompt.hi)
        else:
            prompts.add_point(prompt.position, prompt.positive)
    except Exception as exc:
        state["prompt_error"] = error_message(exc, hide)
    else:
        state.pop("prompt_error", None)
    return True


def _summary(prompts: PromptSession, image: Volume) -> str:
    points = prompts.prompts.points
    positive = sum(p.positive for p in points)
    parts = [f"{positive} positive and {len(points) - positive} negative point(s)",
             f"{len(prompts.prompts.boxes)} box(es)"]
    mask = prompts.mask
    if mask is not None:
        voxels = int(np.count_nonzero(mask))
        ml = voxels * float(np.prod(image.spacing)) / 1000.0
        parts.append(f"mask {voxels} voxels ({ml:.4g} mL)")
    return " · ".join(parts)


def show(state: Any, image: Volume, model: str, *, trust: bool,
         hide: dict[str, str]) -> Added | None:
    """Draw the prompt mode; the new segmentation when the user adds the result to it."""
    try:  # deferred: an optional dependency (the app extra); the rest of the page runs without
        from streamlit_image_coordinates import streamlit_image_coordinates
    except ImportError:
        st.error("The prompt mode needs streamlit-image-coordinates: pip install "
                 "'medseg\\[app\\]'")
        return None

    try:
        prompts = session(state, image, model, trust)
    except Exception as exc:
        st.error(plain(error_message(exc, hide)))
        return None
    base: Segmentation | None = state.get("seg")
    left, right = st.columns([3, 2])
    with right:
        where = geometry(state, image)
        st.toggle("Negative click (background)", key="prompt_negative",
                  help="Off: a click adds a point on the object. On: a click marks background "
                       "(removes what it touches).")
        c1, c2 = st.columns(2)
        if c1.button("Undo", key="prompt_undo", disabled=len(prompts) == 0):
            prompts.undo()
            state.pop("prompt_error", None)
        if c2.button("Clear", key="prompt_clear", disabled=len(prompts) == 0):
            state.pop("prompt_session", None)
            state.pop("prompt_error", None)
            prompts = session(state, image, model, trust)
        if prompts.answers > 1 and len(prompts):
            _answers(state, prompts, hide)
        st.caption(plain(_summary(prompts, image)))
    with left:
        picture = prompt_canvas.picture(
            where, image.array[0], _window(state, image), mask=prompts.mask,
            labels=None if base is None else base.labels.data, prompts=prompts.prompts)
        event = streamlit_image_coordinates(picture, key=CANVAS_KEY, click_and_drag=True,
                                            cursor="crosshair")
        st.caption("Click on the structure to add a point; drag to draw a box on this slice. "
                   "The gold mask is the model's answer to every prompt so far.")
    if handle(state, event, where, prompts, hide):
        st.rerun()
    if state.get("prompt_error"):
        st.error(plain(state["prompt_error"]))
    return _result(state, image, model, prompts, base, hide)


#: what the answer buttons mean
ANSWER_HELP = ("One click can mean a pocket or what surrounds it: the fat in a kidney's sinus "
               "or the whole kidney, a lesion or the liver around it. The model offers several "
               "answers (click3d reads the clicked tissue from wider and wider regions; SAM "
               "gives its three masks after MedSAM's one); 1 is the model's default. The "
               "choice answers the last prompt again; the next prompt refines the mask "
               "chosen. Undo goes back to the answer before.")


def _answers(state: Any, prompts: PromptSession, hide: dict[str, str]) -> None:
    """The answer buttons: they show the session's answer to the last prompt (which a new
    prompt or undo changes) and a press answers that prompt again."""

    def chosen() -> None:
        try:
            prompts.choose(int(state[ANSWER_KEY]))
        except Exception as exc:
            state["prompt_error"] = error_message(exc, hide)
        else:
            state.pop("prompt_error", None)

    state[ANSWER_KEY] = prompts.answer
    st.radio("Answer", list(range(prompts.answers)), format_func=lambda k: str(k + 1),
             horizontal=True, key=ANSWER_KEY, on_change=chosen, help=ANSWER_HELP)


def _result(state: Any, image: Volume, model: str, prompts: PromptSession,
            base: Segmentation | None, hide: dict[str, str]) -> Added | None:
    """Name the result and put it into the segmentation (or let it stand alone)."""
    c1, c2, c3 = st.columns([2, 2, 2])
    name = c1.text_input("Name of the result", value="object", key="prompt_name")
    classes = {} if base is None else {v: n for v, n in base.label_names.items() if v != 0}
    use = c2.radio("Use it as", list(USES) if classes else ["New class"], key="prompt_use",
                   help="New class: a label of its own in the segmentation shown (alone when "
                        "there is none yet). Add to / remove from a class: edit a model's "
                        "result. On its own: a segmentation of this class only.")
    how = USES[use]
    target = None
    if how in ("add", "remove"):
        target = c3.selectbox("Class", list(classes), format_func=classes.get,
                              key="prompt_target")
    label = "Add to the segmentation" if base is not None and how != "alone" \
        else "Use as the segmentation"
    if not st.button(label, key="prompt_apply", disabled=prompts.mask is None, type="primary"):
        return None
    alone = base is None or how == "alone"
    try:
        out = apply_mask(None if alone else base, prompts.mask, affine=image.affine,
                         how="new" if alone else how, name=name, target=target)
    except Exception as exc:
        st.error(plain(error_message(exc, hide)))  # for this click only
        return None
    state.pop("prompt_session", None)  # the next object starts afresh
    state.pop("prompt_error", None)
    if alone:
        return Added(out, model, model)
    before = str(state.get("seg_model") or model)
    made_by = before if model in before.split(" + ") else f"{before} + {model}"
    return Added(out, made_by, str(state.get("seg_codes_model") or before))
