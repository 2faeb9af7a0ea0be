"""The HTML report opens with a compact Dice-per-class table (issue 25, reports), and each
class's summary heading is kept with its table so a PDF page never ends on a bare heading."""

from __future__ import annotations

import re

import numpy as np

from medseg.evaluation.options import EvaluationOptions
from medseg.evaluation.run import evaluate_folders
from medseg.io import write_image
from medseg.volume import LabelMap


def test_report_starts_with_dice_per_class_and_keeps_headings_with_tables(tmp_path):
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    for case, shift in (("a", 0), ("b", 1), ("c", 2)):
        ref = np.zeros((24, 24, 12), dtype=np.uint8)
        ref[4:12, 4:12, 2:8], ref[14:20, 14:20, 3:9] = 1, 2
        pred = np.roll(ref, shift, axis=0)
        write_image(LabelMap.from_spatial(ref, affine), tmp_path / "ref" / f"{case}.nii.gz",
                    label_names={1: "liver", 2: "spleen"})
        write_image(LabelMap.from_spatial(pred, affine), tmp_path / "pred" / f"{case}.nii.gz",
                    label_names={1: "liver", 2: "spleen"})
    result = evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "report",
                              EvaluationOptions(workers=1, progress=False))
    page = result.files["html"].read_text()
    first = page.index("<h2>Dice per class</h2>")
    assert first < page.index("<h2>Summary</h2>") and page.count("<h2>") > 3
    assert first == page.index("<h2>")  # the first section of the page
    table = page[first:page.index("</table>", first)]
    rows = re.findall(r"<tr><td class='l'>(\w+)</td><td>(\d)</td><td>(\d)</td><td>([0-9.]+)"
                      r"</td><td>([^<]+)</td>", table)
    assert [(r[0], r[1], r[2]) for r in rows] == [("liver", "1", "3"), ("spleen", "2", "3")]
    expected = {n: np.mean([r["dice"] for r in result.rows if r["class"] == n])
                for n in ("liver", "spleen")}
    for name, _label, _n, mean, ci in rows:
        assert float(mean) == round(expected[name], 3) and "&ndash;" in ci
    for name in ("liver", "spleen"):
        assert f"<div class='keep'><h3>{name} (label" in page
    assert ".keep{break-inside:avoid" in page
