"""Issue 25: the report's gallery is drawn on the image, not on the masks alone.

A cohort of one case: the reference is a cube, the prediction the cube moved one voxel; the
image holds a grey gradient (never constant), the organ (the reference cube) at 2000 and a bright
marker (5000) beside it, inside the crop margin but outside both masks. Without ``--images`` the
tile is the masks alone (black everywhere outside them: the old behaviour); with ``--images``
the image shows through: the gradient outside the masks, the organ brighter than its
surroundings inside the masks, and the marker white.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from medseg.cli import main
from medseg.evaluation.report.gallery import BORDERS, MARGIN
from medseg.io import write_image
from medseg.volume import Volume
from tests.study_cohorts import AFFINE, SHAPE, cube, write

SIDE, START = 10, 4
#: marker voxels (x, y): two voxels right of the moved cube, inside the crop margin
MARKER = (slice(START + SIDE + 3, START + SIDE + 4), slice(8, 10))


def _cohort(root):
    ref = cube(SIDE, start=START)
    write(root / "ref", "c0", ref)
    write(root / "pred", "c0", cube(SIDE, shift=1, start=START))
    x, y, _ = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    image = (40.0 * x + 30.0 * y).astype(np.float32)  # gradient 0..1490
    image[ref > 0] = 2000.0
    image[MARKER[0], MARKER[1], :] = 5000.0
    (root / "images").mkdir()
    write_image(Volume.from_spatial(image, AFFINE), root / "images" / "c0_0000.nii.gz")
    return root


def _tile(out):
    (png,) = sorted((out / "gallery").glob("*.png"))
    return np.asarray(Image.open(io.BytesIO(png.read_bytes())).convert("RGB")).astype(int)


def _args(root, out, *more):
    return ["evaluate", "--pred", str(root / "pred"), "--ref", str(root / "ref"), "-o",
            str(out), "--labels", "organ=1", "--workers", "1", *more]


def test_gallery_without_images_is_masks_alone(tmp_path):
    root = _cohort(tmp_path)
    assert main(_args(root, tmp_path / "masks")) == 0
    tile = _tile(tmp_path / "masks")
    scale = tile.shape[1] // (START + SIDE + 1 + MARGIN)
    # outside both masks every pixel is black: the image is nowhere (the old gallery)
    outside = tile[: START * scale, : START * scale]
    assert np.all(outside == 0)
    marker = tile[MARKER[1].start * scale + 1, MARKER[0].start * scale + 1]
    assert tuple(marker) == (0, 0, 0)
    assert "masks alone" in (tmp_path / "masks" / "report.html").read_text()


def test_gallery_is_drawn_on_the_image(tmp_path):
    root = _cohort(tmp_path)
    out = tmp_path / "on_image"
    assert main(_args(root, out, "--images", str(root / "images"))) == 0
    tile = _tile(out)
    # crop: x 0..(4+10+1+6)=21, y 0..(4+10+6)=20 voxels, scaled, first axis left to right
    scale = tile.shape[1] // (START + SIDE + 1 + MARGIN)
    assert tile.shape[:2] == ((START + SIDE + MARGIN) * scale, (START + SIDE + 1 + MARGIN) * scale)

    def px(x, y):  # centre of voxel (x, y)
        return tile[y * scale + scale // 2, x * scale + scale // 2]

    # outside both masks: the grey gradient, not one constant colour
    outside = [px(x, y) for x in range(START + SIDE + 1 + MARGIN)
               for y in range(START + SIDE + MARGIN)
               if not (START - 1 <= x <= START + SIDE + 1 and START - 1 <= y <= START + SIDE)
               and not (x == MARKER[0].start and y in (8, 9))]
    grey_levels = {int(p[0]) for p in outside}
    assert all(p[0] == p[1] == p[2] for p in outside) and len(grey_levels) > 20
    assert px(START - 2, START - 2)[0] > px(0, 0)[0]  # brighter down the gradient
    # inside both masks, away from the borders: the organ, brighter than its surroundings
    organ = px(START + SIDE // 2, START + SIDE // 2)
    assert organ[0] == organ[1] == organ[2] and organ[0] > max(grey_levels)
    # the marker beside the masks is drawn white (the brightest structure of the slice)
    assert tuple(px(MARKER[0].start, MARKER[1].start)) == (255, 255, 255)
    # both borders are drawn on it: reference red (missed side), prediction blue (extra side)
    colours = {tuple(c) for c in tile.reshape(-1, 3)}
    assert BORDERS["ref"] in colours and BORDERS["pred"] in colours
    html = (out / "report.html").read_text()
    assert "reference border red" in html and "masks alone" not in html


def test_evaluate_page_draws_the_gallery_on_uploaded_images(tmp_path):
    """The Evaluate page's cohort: with a zip of images the report's gallery is on them;
    without, it says it shows masks alone."""
    import zipfile
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[1]
    brain = root / "sample_data" / "Dataset001_BrainTissue"

    def zipped(files):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for f in files:
                zf.write(f, f.name)
        return buf.getvalue()

    refs = zipped(sorted((brain / "labelsTs").glob("*.nii.gz"))[:2])
    images = zipped(sorted((brain / "imagesTs").glob("*.nii.gz"))[:2])
    at = AppTest.from_file(str(root / "app" / "Home.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/2_Evaluate.py").run()
    at.radio(key="cohort_mode").set_value("Upload zips of predictions and references").run()
    at.file_uploader(key="pred_zip").set_value(("p.zip", refs, "application/zip"))
    at.file_uploader(key="ref_zip").set_value(("r.zip", refs, "application/zip"))
    at.run()
    at.button(key="cohort_run").click().run()
    assert not at.exception and not at.error
    assert "masks alone" in at.session_state["cohort"]["files"]["html"].decode()
    at.file_uploader(key="images_zip").set_value(("i.zip", images, "application/zip"))
    at.run()
    at.button(key="cohort_run").click().run()
    assert not at.exception and not at.error
    html = at.session_state["cohort"]["files"]["html"].decode()
    assert "reference border red" in html and "masks alone" not in html
