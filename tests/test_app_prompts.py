"""The Segment page's prompt mode (issue 22, part 5).

* Pixel -> voxel: :class:`SliceGeometry` against the viewer's own slices
  (:class:`medseg_ui.render.DisplayVolume`) and its label resizing, on RAS, LPS, permuted and
  anisotropic grids and on a 2-D image.
* The region-growing test model (tests/plugin_regiongrow_ui.py) through the engine's
  :class:`PromptSession`, and :func:`apply_mask` (new class, add to / remove from a class).
* The page through AppTest: the promptable model is picked, clicks arrive as the picture
  widget's value (AppTest cannot click inside a custom component; the browser test does),
  Undo, the result named and added as a class, the NIfTI download read back.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from medseg.engine.interactive import PromptSession
from medseg.engine.mask_edit import apply_mask
from medseg.engine.segmenter import InferenceSettings, Segmentation, Segmenter
from medseg.errors import InputError, MedsegError
from medseg.models import load_model
from medseg.plugins import get_plugin_manager
from medseg.prompts.types import Box, Point
from medseg.registry import build_registry
from medseg.volume import LabelMap, Volume
from medseg_ui import prompt_canvas, render
from medseg_ui.prompt_coords import SliceGeometry
from medseg_ui.text import plain
from tests import plugin_regiongrow_ui as regiongrow

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
TIMEOUT = 120

#: non-trivial grids: RAS anisotropic, LPS (x and y flipped), axes permuted with a flip
AFFINES = {
    "ras": np.diag([0.8, 1.0, 2.5, 1.0]),
    "lps": np.array([[-1.2, 0, 0, 30], [0, -0.9, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1.0]]),
    "permuted": np.array([[0, 0, -2.0, 10], [1.5, 0, 0, -4], [0, -0.7, 0, 8],
                          [0, 0, 0, 1.0]]),
}


def _volume(name: str, shape=(7, 9, 5)) -> Volume:
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)  # every voxel its own
    return Volume.from_spatial(data, AFFINES[name])


# ---- pixel -> voxel ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(AFFINES))
@pytest.mark.parametrize("view", sorted(render.VIEWS))
def test_slice_geometry_is_the_viewers_slice(name, view):
    """Each displayed pixel's voxel is the one the viewer draws there, on every grid."""
    volume = _volume(name)
    disp = render.DisplayVolume.from_volume(volume)
    data = volume.array[0]
    for index in (0, disp.n_slices(view) // 2, disp.n_slices(view) - 1):
        where = SliceGeometry.of(volume, view, index)
        shown, _mask, spacing = disp.slice(view, index)
        assert (where.rows, where.cols) == shown.shape
        assert where.n_slices == disp.n_slices(view)
        np.testing.assert_allclose(where.spacing, spacing)
        np.testing.assert_array_equal(where.take(data), shown)
        for row, col in ((0, 0), (where.rows - 1, 0), (1, where.cols - 1),
                         (where.rows // 2, where.cols // 2)):
            ijk = where.voxel(row, col)
            assert all(v == int(v) for v in ijk)
            assert data[tuple(int(v) for v in ijk)] == shown[row, col]
            assert where.pixel(ijk) == (row, col, 0.0)
        # one slice further along the view's axis: depth 1 (or -1 at the last slice)
        other = SliceGeometry.of(volume, view, index + 1 if index == 0 else index - 1)
        assert abs(where.pixel(other.voxel(0, 0))[2]) == 1.0


def test_slice_geometry_of_a_2d_image():
    data = np.arange(6 * 4, dtype=np.float32).reshape(6, 4)
    volume = Volume.from_spatial(data, np.diag([0.5, 2.0, 1.0, 1.0]))
    shown, _m, spacing = render.DisplayVolume.from_volume(volume).slice("Image", 0)
    where = SliceGeometry.of(volume, "Image", 0)
    np.testing.assert_array_equal(where.take(data), shown)
    np.testing.assert_allclose(where.spacing, spacing)
    assert data[where.voxel_at(0, 0, 40, 60)] == shown[0, 0]
    with pytest.raises(ValueError):
        SliceGeometry.of(volume, "Axial", 0)


@pytest.mark.parametrize("scale", [1.0, 0.5, 1.7])
def test_display_pixels_land_on_the_drawn_voxels(scale):
    """Every pixel of the picture, at the size drawn (scale 1) or scaled by the browser, maps
    to the voxel drawn there (labels are resized by nearest neighbour, as render_slice
    does)."""
    volume = _volume("permuted", (11, 6, 4))
    where = SliceGeometry.of(volume, "Coronal", 3)
    width, height = render.display_size((where.rows, where.cols), where.spacing)
    ids = where.take(volume.array[0]).astype(np.int32)
    shown_w, shown_h = round(width * scale), round(height * scale)
    drawn = np.asarray(Image.fromarray(ids).resize((shown_w, shown_h),
                                                   Image.Resampling.NEAREST))
    data = volume.array[0]
    for y in range(0, shown_h, 3):
        for x in range(0, shown_w, 3):
            assert data[where.voxel_at(x, y, shown_w, shown_h)] == drawn[y, x], (x, y)
    # points off the picture (a drag released outside it) are clipped to its border
    assert where.slice_pixel(-20, shown_h + 50, shown_w, shown_h) == (where.rows - 1, 0)


def test_clicks_and_drags_become_points_and_boxes():
    volume = _volume("lps")
    where = SliceGeometry.of(volume, "Axial", 2)
    w, h = render.display_size((where.rows, where.cols), where.spacing)
    click = prompt_canvas.prompt_of_event({"x": 10, "y": 12, "width": w, "height": h}, where)
    assert click == Point(tuple(map(float, where.voxel_at(10, 12, w, h))), True)
    tiny = prompt_canvas.prompt_of_event(
        {"x1": 10, "y1": 12, "x2": 12, "y2": 13, "width": w, "height": h}, where, negative=True)
    assert tiny == Point(click.position, False)  # a press and release in place is a click
    box = prompt_canvas.prompt_of_event(
        {"x1": 5, "y1": 5, "x2": w - 3, "y2": h - 3, "width": w, "height": h}, where)
    assert isinstance(box, Box) and box.flat_axis == 2  # on this axial slice (LPS: k is z)
    assert box.lo[2] == box.hi[2] == 2.0
    # the picture draws both: a point marker and the box outline in their colours
    from medseg.prompts.types import Prompts

    rgb = prompt_canvas.picture(where, volume.array[0], (100.0, 150.0),
                                prompts=Prompts((click,), (box,)))
    x, y = where.display_point(*where.pixel(click.position)[:2], w, h)
    assert tuple(rgb[int(y), int(x)]) == prompt_canvas.POSITIVE_COLOUR
    assert (rgb == np.asarray(prompt_canvas.BOX_COLOUR, np.uint8)).all(-1).sum() > 20


# ---- the test model through the engine ---------------------------------------------------
def _blob_volume(affine=None) -> tuple[Volume, np.ndarray, np.ndarray]:
    """Two bright balls (intensity 100 and 60) on a noisy dark background."""
    rng = np.random.default_rng(3)
    grid = np.indices((40, 36, 24)).astype(np.float32)
    ball = ((grid - np.array([14, 16, 12])[:, None, None, None]) ** 2
            / np.array([36, 49, 16])[:, None, None, None]).sum(0) <= 1
    other = ((grid - np.array([30, 18, 12])[:, None, None, None]) ** 2).sum(0) <= 16
    image = 100.0 * ball + 60.0 * other + rng.normal(0, 4, ball.shape)
    affine = AFFINES["lps"] if affine is None else affine
    return Volume.from_spatial(image.astype(np.float32), affine), ball, other


@pytest.fixture
def regiongrow_segmenter(tmp_path):
    reg = build_registry(get_plugin_manager(plugins=[regiongrow]))
    folder = regiongrow.write_model(tmp_path / "grow")
    return Segmenter(load_model(folder, reg), InferenceSettings(), reg)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def test_regiongrow_model_answers_points_boxes_and_undo(regiongrow_segmenter):
    volume, ball, other = _blob_volume()
    session = PromptSession(regiongrow_segmenter, volume)
    assert regiongrow_segmenter.promptable and session.mask is None
    assert _dice(session.add_point((14, 16, 12)), ball) == 1.0
    both = session.add_point((30, 18, 12))  # another ball: the union
    assert _dice(both, ball | other) == 1.0
    # a negative click in the second ball takes out the part nearer to it than to the
    # positive click there (x = 30): the voxels at x >= 32
    near = np.indices(ball.shape)[0] >= 32
    assert _dice(session.add_point((33, 18, 12), positive=False), ball | (other & ~near)) == 1.0
    assert _dice(session.undo(), ball | other) == 1.0
    assert len(session) == 2
    # a 2-D box around the first ball's middle slice, alone: grown from its centre, clipped
    # in-plane to the box, through every slice
    boxed = PromptSession(regiongrow_segmenter, volume).add_box((7, 8, 12), (21, 16, 12))
    assert boxed.any() and not boxed[:, 17:].any() and boxed[:, :, 9].any()
    assert _dice(boxed, ball & (np.indices(ball.shape)[1] <= 16)) == 1.0
    # a box elsewhere adds what grows inside it to the clicks' mask
    session.undo()
    both = session.add_box((24, 12, 12), (36, 24, 12))
    assert _dice(both, ball | other) == 1.0
    # a point outside the image is one line naming the input
    with pytest.raises(InputError, match="outside the image"):
        session.add_point((60, 0, 0))
    assert len(session) == 2


# ---- the result into a segmentation ------------------------------------------------------
def test_apply_mask_adds_a_class_edits_one_or_stands_alone():
    affine = AFFINES["permuted"]
    labels = np.zeros((6, 5, 4), np.uint8)
    labels[:3] = 1
    labels[3:, :2] = 2
    seg = Segmentation(LabelMap(labels[None], affine), {0: "background", 1: "liver",
                                                         2: "spleen"})
    mask = np.zeros(labels.shape, bool)
    mask[2:4, 1:3, 1:3] = True
    new = apply_mask(seg, mask, how="new", name=" lesion ")
    assert new.label_names == {0: "background", 1: "liver", 2: "spleen", 3: "lesion"}
    np.testing.assert_array_equal(new.labels.data, np.where(mask, 3, labels))
    np.testing.assert_allclose(new.labels.affine, affine)
    np.testing.assert_array_equal(seg.labels.data, labels)  # the original is untouched
    added = apply_mask(seg, mask, how="add", target=2)
    np.testing.assert_array_equal(added.labels.data, np.where(mask, 2, labels))
    removed = apply_mask(seg, mask, how="remove", target=1)
    np.testing.assert_array_equal(removed.labels.data,
                                  np.where(mask & (labels == 1), 0, labels))
    alone = apply_mask(None, mask, affine=affine, name="cyst")
    assert alone.label_names == {0: "background", 1: "cyst"}
    np.testing.assert_array_equal(alone.labels.data, mask.astype(np.uint8))
    assert [r["voxels"] for r in alone.volumes()] == [int(mask.sum())]
    with pytest.raises(MedsegError, match="'liver' exists already"):
        apply_mask(seg, mask, name="liver")
    with pytest.raises(MedsegError, match="no class with label 7"):
        apply_mask(seg, mask, how="add", target=7)
    with pytest.raises(MedsegError, match="no segmentation to edit"):
        apply_mask(None, mask, affine=affine, how="remove", target=1)
    with pytest.raises(MedsegError, match="not on the segmentation's grid"):
        apply_mask(seg, mask[:-1], name="x")


# ---- the page ----------------------------------------------------------------------------
@pytest.fixture
def prompt_app(tmp_path, monkeypatch):
    """MEDSEG_PLUGINS_DIR with the region-growing format and tests/plugin_dummy.py (its
    threshold format), MEDSEG_MODELS_DIR with one model of each (``grow``; ``bright``: voxels
    above 80), the Segment page open."""
    import streamlit as st

    from tests import plugin_dummy

    pytest.importorskip("streamlit_image_coordinates")  # the app extra's picture component
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(regiongrow.__file__, plugins / "plugin_regiongrow_ui.py")
    shutil.copy(plugin_dummy.__file__, plugins / "plugin_dummy.py")
    regiongrow.write_model(tmp_path / "models" / "grow")
    regiongrow.write_model(tmp_path / "models" / "grow_two", [0.25, 1.0])
    (tmp_path / "models" / "bright").mkdir()
    (tmp_path / "models" / "bright" / plugin_dummy.THRESHOLD_FILE).write_text(
        '{"threshold": 80, "name": "bright"}')
    monkeypatch.setenv("MEDSEG_PLUGINS_DIR", str(plugins))
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path / "models"))
    st.cache_resource.clear()  # the app caches its registry and segmenters
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/1_Segment.py").run()
    yield at
    st.cache_resource.clear()


def _upload(at: AppTest, volume: Volume, name: str = "blobs.nii.gz") -> None:
    buf = io.BytesIO()
    img = nib.Nifti1Image(volume.array[0], volume.affine)
    buf.write(img.to_bytes())
    import gzip

    at.file_uploader(key="upload").set_value((name, gzip.compress(buf.getvalue()),
                                              "application/gzip")).run()


def _click(at: AppTest, volume: Volume, ijk, *, drag_to=None, t: int) -> None:
    """What the picture widget sends for a click (or drag) on voxel ``ijk``: its display
    pixel on the slice shown, found with the page's own geometry."""
    view = at.radio(key="prompt_view").value
    number = at.slider(key=f"prompt_slice_{view}").value
    where = SliceGeometry.of(volume, view, number - 1)
    w, h = render.display_size((where.rows, where.cols), where.spacing)
    row, col, depth = where.pixel(ijk)
    assert depth == 0, "the voxel is not on the slice shown"
    x, y = where.display_point(row, col, w, h)
    event = {"x1": int(x), "y1": int(y), "x2": int(x), "y2": int(y), "width": w, "height": h,
             "unix_time": t}
    if drag_to is not None:
        row2, col2, _ = where.pixel(drag_to)
        event["x2"], event["y2"] = (int(v) for v in where.display_point(row2, col2, w, h))
    at.session_state["prompt_canvas"] = event
    at.run()


def test_prompt_mode_segments_by_clicks_and_adds_the_result(prompt_app, tmp_path):
    at = prompt_app
    volume, ball, other = _blob_volume()
    _upload(at, volume)
    assert not at.exception, [e.message for e in at.exception]
    assert "Run segmentation" not in [b.label for b in at.button]
    at.selectbox(key="model").set_value("grow").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.button(key="prompt_apply").disabled  # nothing to add before a prompt
    # the axial slice through both balls' middle (LPS: k is z, slider counts from 1)
    at.slider(key="prompt_slice_Axial").set_value(13).run()
    _click(at, volume, (14, 16, 12), t=1)
    mask = at.session_state["prompt_session"][2].mask
    assert _dice(mask, ball) == 1.0
    assert plain(f"mask {int(ball.sum())} voxels") in " ".join(c.value for c in at.caption)
    _click(at, volume, (30, 18, 12), t=2)
    assert _dice(at.session_state["prompt_session"][2].mask, ball | other) == 1.0
    _click(at, volume, (30, 18, 12), t=2)  # the same event again changes nothing
    assert len(at.session_state["prompt_session"][2]) == 2
    at.button(key="prompt_undo").click().run()
    assert _dice(at.session_state["prompt_session"][2].mask, ball) == 1.0
    # named and used as the segmentation: volumes and the NIfTI download
    at.text_input(key="prompt_name").set_value("tumour").run()
    at.button(key="prompt_apply").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    seg = at.session_state["seg"]
    assert seg.label_names == {0: "background", 1: "tumour"}
    assert at.session_state["seg_model"] == "grow"
    table = at.table[0].value
    assert int(table.loc[plain("tumour"), "voxels"]) == int(ball.sum())
    path = tmp_path / "mask.nii.gz"
    path.write_bytes(at.session_state["mask_bytes"])
    written = nib.load(str(path))
    np.testing.assert_allclose(written.affine, volume.affine)
    assert _dice(np.asarray(written.dataobj) == 1, ball) == 1.0
    # a second object (dragged box around the other ball) added as a new class
    _click(at, volume, (25, 13, 12), drag_to=(35, 23, 12), t=3)
    assert _dice(at.session_state["prompt_session"][2].mask, other) == 1.0
    at.text_input(key="prompt_name").set_value("cyst").run()
    at.button(key="prompt_apply").click().run()
    seg = at.session_state["seg"]
    assert seg.label_names == {0: "background", 1: "tumour", 2: "cyst"}
    np.testing.assert_array_equal(seg.labels.data, np.where(other, 2, ball.astype(np.uint8)))
    # ...then removed from "tumour" where a click selects it again: the class is emptied
    _click(at, volume, (14, 16, 12), t=4)
    at.radio(key="prompt_use").set_value("Remove from a class").run()
    at.selectbox(key="prompt_target").set_value(1).run()
    at.button(key="prompt_apply").click().run()
    assert not at.exception and not at.error
    assert not (at.session_state["seg"].labels.data == 1).any()
    assert at.session_state["seg_model"] == "grow"


def _answer_radio(at: AppTest):
    found = [r for r in at.radio if r.label == "Answer"]
    return found[0] if found else None


def test_prompt_mode_picks_among_a_models_answers(prompt_app):
    """A model offering two answers per prompt (region growing at two tolerances): the
    Answer buttons (shown once there is a prompt) answer the last click again, the next click
    is answered with the first answer, and undo goes back through the choice."""
    from medseg.prompts.types import Prompts

    at = prompt_app
    volume, ball, other = _blob_volume()
    _upload(at, volume)
    at.selectbox(key="model").set_value("grow").run()
    at.slider(key="prompt_slice_Axial").set_value(13).run()
    _click(at, volume, (14, 16, 12), t=1)
    assert _answer_radio(at) is None  # one answer: no buttons
    at.button(key="prompt_clear").click().run()
    at.selectbox(key="model").set_value("grow_two").run()
    assert not at.exception, [e.message for e in at.exception]
    assert _answer_radio(at) is None  # nothing to answer yet
    at.slider(key="prompt_slice_Axial").set_value(13).run()
    _click(at, volume, (14, 16, 12), t=2)
    radio = _answer_radio(at)
    assert radio is not None and radio.options == ["1", "2"] and radio.value == 0
    session = at.session_state["prompt_session"][2]
    assert _dice(session.mask, ball) == 1.0
    image = volume.array[0]
    wide = regiongrow.region_grow(image, Prompts((Point((14.0, 16.0, 12.0)),)), 1.0)
    assert wide.sum() > 2 * ball.sum()
    _answer_radio(at).set_value(1).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    session = at.session_state["prompt_session"][2]
    assert session.answer == 1 and _answer_radio(at).value == 1
    np.testing.assert_array_equal(session.mask, wide)
    # the next click is answered with answer 1 (this model refines no mask: both balls)
    _click(at, volume, (30, 18, 12), t=3)
    session = at.session_state["prompt_session"][2]
    assert session.answer == 0 and len(session) == 2 and _answer_radio(at).value == 0
    assert _dice(session.mask, ball | other) == 1.0
    # undo: the first click with answer 2, then with answer 1
    at.button(key="prompt_undo").click().run()
    np.testing.assert_array_equal(at.session_state["prompt_session"][2].mask, wide)
    at.button(key="prompt_undo").click().run()
    assert _dice(at.session_state["prompt_session"][2].mask, ball) == 1.0
    assert _answer_radio(at).value == 0


def test_prompt_mode_edits_a_model_result_and_errors_are_one_line(prompt_app, tmp_path):
    """A threshold model (tests/plugin_dummy.py) segments the bright ball; the prompt mode
    adds the dim ball as a new class, then adds to the model's class; bad prompts and a
    taken name are one line each."""
    at = prompt_app
    volume, ball, other = _blob_volume()
    _upload(at, volume)
    at.selectbox(key="model").set_value("bright").run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    np.testing.assert_array_equal(at.session_state["seg"].labels.data, ball)
    at.selectbox(key="model").set_value("grow").run()
    assert at.radio(key="prompt_use").options == ["New class", "Add to a class",
                                                  "Remove from a class", "On its own"]
    at.slider(key="prompt_slice_Axial").set_value(13).run()
    # a drag of a few pixels inside one voxel is a click there, not a box of no size
    where = SliceGeometry.of(volume, "Axial", 12)
    w, h = render.display_size((where.rows, where.cols), where.spacing)
    x, y = where.display_point(*where.pixel((30, 18, 12))[:2], w, h)
    assert w / where.cols > 6 and h / where.rows > 6  # pixels per voxel
    at.session_state["prompt_canvas"] = {"x1": int(x) - 2, "y1": int(y) - 2, "x2": int(x) + 2,
                                         "y2": int(y) + 2, "width": w, "height": h,
                                         "unix_time": 1}
    at.run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    assert at.session_state["prompt_session"][2].prompts.points == (Point((30.0, 18.0, 12.0)),)
    np.testing.assert_array_equal(at.session_state["prompt_session"][2].mask, other)
    at.button(key="prompt_clear").click().run()
    assert at.session_state["prompt_session"][2].mask is None
    _click(at, volume, (30, 18, 12), t=2)
    assert not at.error
    # the name of a class that exists already: one line, nothing changed
    at.text_input(key="prompt_name").set_value("bright").run()
    at.button(key="prompt_apply").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [plain(
        "a class named 'bright' exists already: choose another name, or add to that class")]
    at.text_input(key="prompt_name").set_value("dim").run()
    at.button(key="prompt_apply").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    seg = at.session_state["seg"]
    assert seg.label_names == {0: "background", 1: "bright", 2: "dim"}
    np.testing.assert_array_equal(seg.labels.data, ball + 2 * other)
    assert at.session_state["seg_model"] == "bright + grow"
    rows = at.table[0].value
    assert int(rows.loc["dim", "voxels"]) == int(other.sum())
    # the dim ball added to the model's class instead
    _click(at, volume, (30, 18, 12), t=3)
    at.radio(key="prompt_use").set_value("Add to a class").run()
    at.selectbox(key="prompt_target").set_value(1).run()
    at.button(key="prompt_apply").click().run()
    np.testing.assert_array_equal(at.session_state["seg"].labels.data, ball | other)
    assert at.session_state["seg"].label_names == {0: "background", 1: "bright", 2: "dim"}
    # or on its own: a segmentation of that class only, made by the prompt model alone
    _click(at, volume, (30, 18, 12), t=4)
    at.radio(key="prompt_use").set_value("On its own").run()
    assert at.button(key="prompt_apply").label == "Use as the segmentation"
    at.text_input(key="prompt_name").set_value("dim ball").run()
    at.button(key="prompt_apply").click().run()
    assert at.session_state["seg"].label_names == {0: "background", 1: "dim ball"}
    np.testing.assert_array_equal(at.session_state["seg"].labels.data, other)
    assert at.session_state["seg_model"] == "grow"
    # the NIfTI download lies on the input's grid
    path = tmp_path / "mask.nii.gz"
    path.write_bytes(at.session_state["mask_bytes"])
    from medseg.io import read_label_map

    assert read_label_map(path).same_grid(volume)


def test_prompt_mode_on_a_dicom_series_gives_a_dicom_seg(prompt_app):
    """A DICOM input: the prompt result downloads as a DICOM SEG naming the class."""
    import pydicom

    at = prompt_app
    at.radio(key="source").set_value("Bundled sample").run()
    at.selectbox(key="sample_pick").set_value("DICOM series / ct_phantom_001")
    at.button(key="load_sample").click().run()
    at.selectbox(key="model").set_value("grow").run()
    volume = at.session_state["image"]
    view = at.radio(key="prompt_view").value
    where = SliceGeometry.of(volume, view, at.slider(key=f"prompt_slice_{view}").value - 1)
    centre = where.voxel(where.rows // 2, where.cols // 2)
    _click(at, volume, centre, t=1)
    mask = at.session_state["prompt_session"][2].mask
    assert mask[tuple(int(v) for v in centre)]
    at.text_input(key="prompt_name").set_value("liver").run()
    at.button(key="prompt_apply").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _stamp, seg_path, problem = at.session_state["seg_dicom"]
    assert problem is None
    ds = pydicom.dcmread(seg_path)
    assert ds.Modality == "SEG"
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["liver"]
