"""The Streamlit app, driven page by page with ``streamlit.testing.v1.AppTest``.

A small brain-tissue bundle (seeded, untrained weights) is written once for the module and
served through ``$MEDSEG_MODELS_DIR``; the rendering helpers are checked directly
(radiological orientation, millimetre aspect, overlay, windows, upload names).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
BRAIN = ROOT / "sample_data" / "Dataset001_BrainTissue"
TIMEOUT = 120


from medseg.volume import LabelMap, Volume  # noqa: E402
from medseg_ui import render  # noqa: E402
from medseg_ui.session import SessionFolder, UploadError, save_upload  # noqa: E402
from medseg_ui.text import plain  # noqa: E402  (names on the page are markdown-escaped)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A bundle with seeded, untrained U-Net weights: the app does not care how good it is,
    and training even a tiny one takes tens of seconds on a busy machine."""
    import torch

    from medseg.models.medseg_bundle.bundle import save_bundle
    from medseg.registry import load_registry

    root = tmp_path_factory.mktemp("models")
    params = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}
    torch.manual_seed(0)
    net = load_registry().architectures.get("unet").factory(
        spatial_dims=3, in_channels=1, out_channels=4, **params)
    labels = {"background": 0, "white_matter": 1, "grey_matter": 2, "csf": 3}
    save_bundle(root / "brain_tissue", {
        "name": "BrainTissue", "architecture": {"name": "unet", "params": params},
        "spatial_dims": 3, "in_channels": 1, "labels": labels, "patch_size": [32, 32, 32],
        "preprocessing": {"target_spacing": [3.0, 3.0, 3.0], "intensity": {"scheme": "zscore"},
                          "orientation": "RAS"},
        "inference": {"overlap": 0.25, "postprocessors": []},
        "training": {"val_dice": {"white_matter": 0.5, "grey_matter": 0.4, "csf": 0.3},
                     "test_dice": {"white_matter": 0.45, "grey_matter": 0.35, "csf": 0.25}},
    }, net.state_dict())
    old = os.environ.get("MEDSEG_MODELS_DIR")
    os.environ["MEDSEG_MODELS_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("MEDSEG_MODELS_DIR", None)
    else:
        os.environ["MEDSEG_MODELS_DIR"] = old


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(f"pages/{page}").run()
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _segment_sample(at: AppTest, title: str = "BrainTissue / brain_100") -> None:
    at.radio(key="source").set_value("Bundled sample").run()
    at.selectbox(key="sample_pick").set_value(title)
    at.button(key="load_sample").click().run()
    _ok(at)
    at.button(key="run").click().run()
    _ok(at)


def _table(at: AppTest, *columns: str, index: int = 0):
    """The ``index``-th dataframe shown whose columns include ``columns`` (AppTest does not
    expose dataframe keys)."""
    frames = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    return frames[index]


def _classes(at: AppTest):
    return next(m for m in at.multiselect if m.label == "Show classes")


def _volumes(at: AppTest):
    """The volumes table (class, label, voxels, volume in mL, qc), without its total row."""
    frame = at.table[0].value.reset_index()
    total = frame[frame["class"] == "total (all classes)"]
    frame = frame[frame["class"] != "total (all classes)"].astype({"volume (mL)": float,
                                                                    "voxels": int})
    assert int(total["voxels"].iloc[0]) == frame["voxels"].sum()
    return frame


# ---- pages ----------------------------------------------------------------------------------
def test_home_links_pages_and_lists_models(models_dir):
    at = _app()
    _ok(at)
    assert plain("brain_tissue") in at.success[0].value


def test_segment_sample_view_and_volumes(models_dir):
    at = _app("1_Segment.py")
    _ok(at)
    _segment_sample(at)
    at.radio(key="viewer_mode").set_value("Slices (static images)").run()  # not NiiVue's
    table = _volumes(at)
    assert list(table["class"]) == [plain(n) for n in ("white_matter", "grey_matter", "csf")]
    assert (table["volume (mL)"] >= 0).all() and table["volume (mL)"].sum() > 0
    assert len(at.get("image")) == 3  # axial, coronal, sagittal
    assert _classes(at).value == [1, 2, 3]  # every class shown at first
    # change slice, opacity, window and hide a class: the viewer re-renders without error
    at.slider(key="slice_Axial").set_value(5).run()
    at.slider(key="opacity").set_value(0.9).run()
    at.selectbox(key="window").set_value("CT bone (W2000/L300)").run()
    _classes(at).unselect(1).run()
    _ok(at)
    assert at.slider(key="slice_Axial").value == 5
    assert at.slider(key="slice_Axial").min == 1  # slider and caption both count from 1
    captions = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("Axial 5/") for c in captions), captions
    assert at.get("download_button")


def test_upload_nifti_zip_dicom_and_2d(models_dir, tmp_path):
    at = _app("1_Segment.py")
    data = (BRAIN / "imagesTs" / "brain_101_0000.nii.gz").read_bytes()
    # a hostile name: only its suffix is used
    at.file_uploader(key="upload").set_value(("../../x/brain.nii.gz", data, "application/gzip"))
    at.run()
    _ok(at)
    assert any(plain("brain.nii.gz") in m.value for m in at.markdown)
    at.button(key="run").click().run()
    _ok(at)
    assert _volumes(at)["voxels"].sum() > 0
    # downloads are named after the upload, not "segmentation_mask"
    assert any(t.value.startswith("Files: brain.nii.gz") for t in at.text), \
        [t.value for t in at.text]

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted((ROOT / "sample_data" / "dicom" / "ct_phantom_001").iterdir()):
            zf.write(f, f"series/{f.name}")
    at.file_uploader(key="upload").set_value(("ct.zip", buf.getvalue(), "application/zip"))
    at.run()
    _ok(at)
    at.radio(key="viewer_mode").set_value("Slices (static images)").run()  # not NiiVue's
    assert len(at.get("image")) == 3
    assert at.selectbox(key="window").value.startswith("CT soft tissue")  # HU detected

    from PIL import Image

    png = io.BytesIO()
    Image.fromarray((np.arange(64 * 48) % 255).reshape(48, 64).astype(np.uint8)).save(png, "PNG")
    at.file_uploader(key="upload").set_value(("photo.png", png.getvalue(), "image/png"))
    at.run()
    _ok(at)
    assert len(at.get("image")) == 1
    at.button(key="run").click().run()  # a 3D model on a 2D image: a clear one-line error
    assert not at.exception
    assert "3D" in at.error[0].value and "2D" in at.error[0].value


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("broken.nii.gz", b"not a nifti at all", "broken.nii.gz"),
    ("virus.exe", b"MZ....", "unsupported file type"),
    ("empty.nii", b"", "empty"),
])
def test_bad_upload_shows_one_line_error(models_dir, name, content, expected):
    at = _app("1_Segment.py")
    at.file_uploader(key="upload").set_value((name, content, "application/octet-stream"))
    at.run()
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert plain(expected) in message and "\n" not in message
    assert "Traceback" not in message and plain("medseg-app-") not in message  # no paths
    assert plain(".nii.gz.nii") not in message and plain(".nii.nii") not in message


def test_evaluate_case_and_cohort(models_dir):
    at = _app("1_Segment.py")
    _segment_sample(at)
    at.switch_page("pages/2_Evaluate.py").run()
    _ok(at)
    at.button(key="score_bundled").click().run()
    _ok(at)
    dice = _table(at, "dice", "hd95 (mm)")  # units and the NSD tolerance in the titles
    assert list(dice["class"]) == ["white_matter", "grey_matter", "csf"]  # label order
    assert "nsd @ 2 mm" in dice.columns  # the voxel size (2 mm) since issue 25
    assert dice["dice"].between(0, 1).all()
    assert not at.warning  # same grid, labels in common: nothing to warn about
    assert at.file_uploader(key="ref_upload").label.startswith("…or upload")
    # the same through an uploaded reference
    ref = (BRAIN / "labelsTs" / "brain_100.nii.gz").read_bytes()
    at.file_uploader(key="ref_upload").set_value(("ref.nii.gz", ref, "application/gzip"))
    at.run()
    at.button(key="score_upload").click().run()
    _ok(at)
    np.testing.assert_allclose(_table(at, "dice", "hd95 (mm)")["dice"], dice["dice"])
    # a reference on another grid (half resolution): said plainly before the scores
    import nibabel as nib

    full = nib.load(BRAIN / "labelsTs" / "brain_100.nii.gz")
    half = nib.Nifti1Image(np.asarray(full.dataobj)[::2, ::2, ::2].astype(np.uint8),
                           full.affine @ np.diag([2.0, 2.0, 2.0, 1.0]))
    coarse = io.BytesIO(half.to_bytes())
    at.file_uploader(key="ref_upload").set_value(("coarse.nii", coarse.getvalue(),
                                                  "application/octet-stream"))
    at.run()
    at.button(key="score_upload").click().run()
    warning = " ".join(w.value for w in at.warning)
    assert "reference grid differs" in warning and "resampled" in warning, warning
    at.file_uploader(key="ref_upload").set_value(("ref.nii.gz", ref, "application/gzip"))
    at.run()
    at.button(key="score_upload").click().run()
    # cohort: the masks predicted in this session against the bundled test labels
    at.button(key="cohort_run").click().run()
    _ok(at)
    cohort = _table(at, "mean", "ci_low")
    assert list(cohort["class"]) == ["white_matter", "grey_matter", "csf"]
    assert (cohort["n"] == 1).all()
    np.testing.assert_allclose(cohort["mean"], dice["dice"], atol=1e-6)
    assert at.get("download_button")


def test_evaluate_cohort_from_uploaded_zips(models_dir, tmp_path):
    refs = sorted((BRAIN / "labelsTs").glob("*.nii.gz"))[:2]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for r in refs:
            zf.write(r, r.name)
    at = _app("2_Evaluate.py")
    at.radio(key="cohort_mode").set_value("Upload zips of predictions and references").run()
    at.file_uploader(key="pred_zip").set_value(("p.zip", buf.getvalue(), "application/zip"))
    at.file_uploader(key="ref_zip").set_value(("r.zip", buf.getvalue(), "application/zip"))
    at.run()
    at.button(key="cohort_run").click().run()
    _ok(at)
    cohort = _table(at, "mean", "ci_low")
    assert (cohort["mean"] == 1.0).all() and (cohort["n"] == 2).all()

    # an unsafe archive is refused with one line
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.nii.gz", b"x")
    at.file_uploader(key="pred_zip").set_value(("p.zip", evil.getvalue(), "application/zip"))
    at.run()
    at.button(key="cohort_run").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value


def test_models_and_plugins_page(models_dir, monkeypatch):
    monkeypatch.chdir(models_dir.parent)  # a model folder under the working directory
    at = _app("3_Models_and_plugins.py")
    _ok(at)
    tabs = {t.label.split(" ")[0]: t for t in at.tabs}
    assert {"architectures", "losses", "postprocessors", "readers"} <= set(tabs)
    assert "unet" in set(tabs["architectures"].dataframe[0].value["name"])
    for kind in ("losses", "postprocessors", "readers"):
        frame = tabs[kind].dataframe[0].value
        assert len(frame) > 0 and frame["plugin"].str.len().min() > 0
    metrics = tabs["metrics"].dataframe[0].value  # built-in metrics listed, not "(0)"
    assert {"dice", "iou", "hd95", "nsd"} <= set(metrics["name"])
    assert tabs["metrics"].label.startswith("metrics (")
    assert "built-in" in tabs["metrics"].label
    labels = _table(at, "validation Dice")
    assert list(labels["class"]) == ["background", "white_matter", "grey_matter", "csf"]
    sources = {t.value for t in at.text if t.value.startswith("source: ")}
    assert f"source: {models_dir.name}/brain_tissue" in sources, sources


def test_paths_are_shown_relative_to_the_working_directory_or_home(monkeypatch, tmp_path):
    from medseg_ui.text import shown_path

    monkeypatch.chdir(tmp_path)
    assert shown_path(tmp_path / "models" / "a") == "models/a"
    assert shown_path(Path.home() / "x" / "y") in ("~/x/y", str(Path.home() / "x" / "y"))
    assert shown_path("/elsewhere/model") == "/elsewhere/model"
    assert shown_path("https://host/models/a") == "https://host/models/a"
    assert shown_path("relative/model") == "relative/model"


def test_sessions_do_not_share_data(models_dir):
    first = _app("1_Segment.py")
    _segment_sample(first)
    second = _app("1_Segment.py")
    _ok(second)
    assert "image" not in second.session_state and "seg" not in second.session_state
    assert not second.get("imgs")
    assert (first.session_state["_medseg_folder"].path
            != second.session_state["_medseg_folder"].path)


# ---- helpers --------------------------------------------------------------------------------
def test_radiological_display_and_aspect():
    """Stored LPS, a voxel at the patient's right-posterior-superior corner shows bottom left
    on the axial view (right on the left, anterior up) and top left on the coronal view;
    4 mm slices keep millimetre aspect."""
    arr = np.zeros((10, 12, 5), np.float32)
    arr[0, 11, 4] = 100
    lps = np.diag([-1.0, -1.0, 4.0, 1.0])  # RAS x = -i, y = -j: i=0 most right, j=11 posterior
    vol = Volume.from_spatial(arr, lps)
    disp = render.DisplayVolume.from_volume(vol)
    assert disp.spacing == (1.0, 1.0, 4.0)
    img, _, pixel = disp.slice("Axial", 4)
    # i=0 is the most right (RAS x largest) and j=11 the most posterior: left column, bottom
    assert img.shape == (12, 10) and pixel == (1.0, 1.0)
    assert img[-1, 0] == 100
    cor, _, pix = disp.slice("Coronal", 0)  # most posterior coronal slice (RAS y smallest)
    assert cor.shape == (5, 10) and pix == (4.0, 1.0)
    assert cor[0, 0] == 100  # superior at the top, right on the left
    rgb = render.render_slice(cor, None, pix, (200, 50))
    h, w = rgb.shape[:2]
    assert abs(h / w - (5 * 4) / 10) < 0.05  # 20 mm tall, 10 mm wide


def test_overlay_colours_and_windows():
    img = np.linspace(-1000, 1000, 100, dtype=np.float32).reshape(10, 10)
    mask = np.zeros((10, 10), np.uint8)
    mask[:5] = 1
    mask[5:] = 2
    rgb = render.render_slice(img, mask, (1.0, 1.0), (400, 40), opacity=1.0, visible=[1],
                              size=(10, 10))
    assert tuple(rgb[0, 0]) == render.label_colour(1)
    assert len(set(map(tuple, rgb[5:].reshape(-1, 3)))) > 1  # class 2 hidden: grey ramp
    assert render.apply_window(np.array([-200.0, 40.0, 500.0]), 400, 40).tolist() == [0, 128, 255]
    assert render.looks_like_ct(img) and not render.looks_like_ct(img + 2000)
    lm = LabelMap(mask[None, :, :], np.eye(4))
    disp = render.DisplayVolume.from_volume(Volume.from_spatial(img, np.eye(4)), lm)
    assert disp.views() == ["Image"] and disp.n_slices("Image") == 1


def test_upload_names_never_reach_paths(tmp_path):
    folder = SessionFolder()
    try:
        path = save_upload(b"data", "../../../etc/passwd.nii.gz", folder.path, "image",
                           (".nii.gz",), 1)
        assert path == folder.path / "image.nii.gz"
        with pytest.raises(UploadError, match="limit is 1 MB"):
            save_upload(b"x" * (2 * 1024 * 1024), "big.nii.gz", folder.path, "image",
                        (".nii.gz",), 1)
    finally:
        folder.cleanup()
    assert not folder.path.exists()


def test_medseg_app_command_line():
    """``medseg app`` runs the app's main file headless with the given port, address, limit."""
    from medseg.cli import build_parser
    from medseg.commands.app import APP_MAIN, streamlit_command

    assert APP_MAIN == APP / "Home.py" and APP_MAIN.is_file()
    args = build_parser().parse_args(["app", "--port", "8765", "--address", "0.0.0.0",
                                      "--max-upload-mb", "64"])
    cmd = streamlit_command(args)
    assert cmd[1:5] == ["-m", "streamlit", "run", str(APP_MAIN)]
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts["--server.headless"] == "true" and opts["--server.port"] == "8765"
    assert opts["--server.address"] == "0.0.0.0" and opts["--server.maxUploadSize"] == "64"
