"""Several readers: inter-reader Dice/HD95, model against each reader and a STAPLE consensus,
and whether the model's disagreement lies within the readers'."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.cli import main
from medseg.errors import GeometryError
from medseg.evaluation.study.readers import staple_consensus
from medseg.volume import LabelMap
from tests.study_cohorts import AFFINE, cube, write

SIDES = [8, 10, 12, 10, 8]


def _readers(tmp_path, model_shift):
    """R1 = truth moved +1, R2 = truth moved -1 (2 apart), model = truth moved model_shift."""
    for i, side in enumerate(SIDES):
        case = f"c{i}"
        write(tmp_path / "r1", case, cube(side, 1))
        write(tmp_path / "r2", case, cube(side, -1))
        write(tmp_path / "pred", case, cube(side, model_shift))
    return tmp_path / "pred", tmp_path / "r1", tmp_path / "r2"


def test_staple_consensus_of_constructed_readers():
    truth = cube(10)
    maps = [LabelMap(a[None], AFFINE) for a in (truth, truth, cube(10, 3))]
    consensus = staple_consensus(maps, [1])
    assert np.array_equal(consensus.data, truth)  # two of three agree: STAPLE keeps them
    same = staple_consensus(maps[:2], [1])
    assert np.array_equal(same.data, truth)
    with pytest.raises(GeometryError, match="different grids"):
        staple_consensus([maps[0], LabelMap(truth[None], AFFINE * 2 + np.diag([0, 0, 0, -1]))],
                         [1])


def test_inter_reader_figures_and_model_within(tmp_path):
    pred, r1, r2 = _readers(tmp_path, 0)
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(pred), "--ref", str(r1), "--ref", str(r2),
                 "-o", str(out), "--labels", "organ=1", "--workers", "1", "--min-n", "5"]) == 0
    doc = json.loads((out / "summary.json").read_text())
    dice = doc["readers"]["classes"]["organ"]["dice"]
    inter = dice["inter_reader"]["R1 vs R2"]
    expected_inter = np.mean([(s - 2) / s for s in SIDES])  # readers 2 voxels apart
    assert inter["n"] == len(SIDES) and inter["mean"] == pytest.approx(expected_inter)
    assert inter["ci_low"] < inter["mean"] < inter["ci_high"]
    expected_model = np.mean([(s - 1) / s for s in SIDES])  # model 1 voxel from each
    for reader in ("R1", "R2"):
        assert dice["model_vs_reader"][reader]["mean"] == pytest.approx(expected_model)
    assert dice["difference"]["mean"] == pytest.approx(expected_model - expected_inter)
    assert dice["within"] is True and "within the readers" in dice["verdict"]
    hd = doc["readers"]["classes"]["organ"]["hd95"]
    # readers 2 voxels (2 mm along axis 0) apart: HD (max) is exactly 2 mm; HD95 <= HD
    assert 0 < hd["inter_reader"]["R1 vs R2"]["max"] <= 2.0 + 1e-9
    assert hd["within"] is True
    assert sorted(p.name for p in (out / "consensus").iterdir()) == [
        f"c{i}.nii.gz" for i in range(len(SIDES))]
    html = (out / "report.html").read_text()
    assert "<h2>Readers</h2>" in html and "model vs consensus" in html


def test_model_outside_the_readers(tmp_path):
    pred, r1, r2 = _readers(tmp_path, 3)  # 2 and 4 voxels from the readers
    out = tmp_path / "out"
    main(["evaluate", "--pred", str(pred), "--ref", str(r1), "--ref", str(r2), "-o", str(out),
          "--workers", "1", "--min-n", "5"])
    dice = json.loads((out / "summary.json").read_text())["readers"]["classes"]["1"]["dice"]
    expected = np.mean([((s - 2) / s + (s - 4) / s) / 2 for s in SIDES])
    assert dice["model_vs_readers_mean"]["mean"] == pytest.approx(expected)
    assert dice["within"] is False and dice["difference"]["ci_high"] < 0
    assert "outside" in dice["verdict"]
