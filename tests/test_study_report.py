"""The reviewer's report: gallery at the slice of largest disagreement, NSD tolerance beside
every NSD, "-" for a zero-width CI, per-case table linked to per_case.csv, methods paragraph,
and the PDF printed by headless Chromium (rendered back to PNG: not blank)."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from medseg.cli import main
from medseg.evaluation.report.gallery import COLOURS, disagreement_slice, slice_png
from medseg.evaluation.report.pdf import find_chromium
from tests.study_cohorts import cube, write


def _cohort(tmp_path, n=3):
    """Case i: prediction = reference cube with an extra blob of i+1 voxels at slice 9 and a
    hole of 2 voxels at slice 5 (so slice 9 has the most disagreement once i >= 2)."""
    for i in range(n):
        ref = cube(10)
        pred = ref.copy()
        pred[4 + 10: 4 + 10 + i + 1, 6, 9] = 1  # extra, just outside the cube at z=9
        pred[6:8, 6, 5] = 0  # missed, 2 voxels at z=5
        write(tmp_path / "ref", f"c{i}", ref)
        write(tmp_path / "pred", f"c{i}", pred)
    return tmp_path / "pred", tmp_path / "ref"


def test_disagreement_slice_and_picture_colours():
    ref = np.zeros((6, 5, 4), bool)
    ref[1:4, 1:4, :] = True
    pred = ref.copy()
    pred[4, 1:4, 2] = True  # 3 extra voxels at z=2
    pred[1, 1, 1] = False  # 1 missed voxel at z=1
    z, p2, r2 = disagreement_slice(pred, ref)
    assert z == 2 and np.array_equal(p2, pred[..., 2])
    img = np.asarray(Image.open(io.BytesIO(slice_png(p2, r2))).convert("RGB"))
    scale = img.shape[1] // 6
    assert img.shape == (5 * scale, 6 * scale, 3)  # first axis left to right
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert COLOURS["pred_only"] in colours and COLOURS["both"] in colours
    blue = np.all(img == COLOURS["pred_only"], axis=-1).sum()
    assert blue == 3 * scale * scale


def test_report_sections(tmp_path):
    pred, ref = _cohort(tmp_path)
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(pred), "--ref", str(ref), "-o", str(out),
                 "--labels", "organ=1", "--tolerance", "2", "--workers", "1"]) == 0
    html = (out / "report.html").read_text()
    # NSD figures carry their tolerance, everywhere
    assert "nsd @ 2 mm" in html and not re.search(r">nsd<", html)
    # per-case table, sortable and linked to the CSV
    assert "<a href='per_case.csv'>per_case.csv</a>" in html and "class='sortable'" in html
    assert html.count("<td class='l'>organ</td>") >= 3
    # gallery: embedded PNGs also written beside the HTML, at the slice of most disagreement
    pictures = sorted((out / "gallery").glob("*.png"))
    assert len(pictures) == 3
    assert "data:image/png;base64," in html
    assert "index 9 of the last axis" in html  # c2: 3 extra voxels at z=9 beat 2 missed at z=5
    # methods paragraph with definitions, policy, bootstrap and versions
    methods = re.search(r"<p class='methods'>(.*?)</p>", html, re.S).group(1)
    for phrase in ("Dice = 2TP/(2TP+FP+FN)", "tolerance of 2 mm", "bootstrap",
                   "absent from both", "Bland-Altman", "SimpleITK", "scipy"):
        assert phrase in methods, phrase


def test_zero_width_ci_is_a_dash_when_n_is_one(tmp_path):
    pred, ref = _cohort(tmp_path, n=1)
    out = tmp_path / "out"
    main(["evaluate", "--pred", str(pred), "--ref", str(ref), "-o", str(out), "--workers", "1"])
    html = (out / "report.html").read_text()
    row = re.search(r"<tr><td class='l'>dice</td>(.*?)</tr>", html).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    # issue 23: below the minimum n (10) the CI cells say so instead of a zero-width interval
    assert cells[0] == "1" and cells[-2:] == ["n &lt; 10", "n &lt; 10"]


def _pdf_page_png(pdf, tmp_path):
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(pdf),
                        str(tmp_path / "page")], check=True, timeout=60)
        return Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    fitz = pytest.importorskip("fitz", reason="needs pdftoppm (poppler-utils) or PyMuPDF")
    pix = fitz.open(pdf)[0].get_pixmap(dpi=40)
    return Image.open(io.BytesIO(pix.tobytes("png"))).convert("L")


@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (Debian package chromium)")
def test_pdf_export_is_not_blank(tmp_path):
    pred, ref = _cohort(tmp_path)
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(pred), "--ref", str(ref), "-o", str(out),
                 "--pdf", "--workers", "1"]) == 0
    pdf = out / "report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    page = np.asarray(_pdf_page_png(pdf, tmp_path))
    dark = np.count_nonzero(page < 128) / page.size
    assert page.shape[0] > 300 and 0.005 < dark < 0.5  # text and tables, not a blank page
    # the printed page is the HTML report: its embedded pictures are the gallery files
    html = (out / "report.html").read_text()
    embedded = {base64.b64decode(b) for b in
                re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)}
    assert embedded == {p.read_bytes() for p in (out / "gallery").glob("*.png")}
