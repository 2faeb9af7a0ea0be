"""Class names everywhere by default, and classes mapped or merged with ``--labels`` (issue
25, points 2 and 3).

* ``evaluate`` names classes from the prediction's NIfTI header (medseg writes the model's
  names there), else from the folders' ``dataset.json``; ``medseg info`` on a medseg mask names
  them too and lists no background.
* ``--labels brain=1,2,3`` scores the union of three tissues against a whole-brain outline:
  the real head of ``sample_data/real_mri`` segmented by ``brain_tissue`` gives README's 0.961.
* A reference with fewer labels than the prediction is warned about before any score.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import main
from medseg.errors import MedsegError
from medseg.evaluation.classes import ClassGroups, parse_class_tokens
from medseg.evaluation.pairs import evaluate_pair, pair_cases
from medseg.volume import LabelMap

ROOT = Path(__file__).resolve().parents[1]
HEAD = ROOT / "sample_data" / "real_mri" / "itk_t1_head.nii.gz"
OUTLINE = ROOT / "sample_data" / "real_mri" / "itk_t1_brain_mask.nii.gz"
BRAIN = ROOT / "sample_data" / "Dataset001_BrainTissue"


def test_label_tokens_name_map_and_merge():
    assert parse_class_tokens(["1", "2"]) == {1: "1", 2: "2"}
    assert parse_class_tokens(["liver=1", "spleen=2"]) == {1: "liver", 2: "spleen"}
    merged = parse_class_tokens(["brain=3,1,2", "lesion=4"])
    assert isinstance(merged, ClassGroups)
    assert merged.names == {1: "brain", 4: "lesion"}
    assert merged.groups == {1: (1, 2, 3), 4: (4,)}
    assert merged.describe() == "brain=1,2,3; lesion=4"
    arr = np.array([0, 1, 2, 3, 4, 5], dtype=np.uint8)
    assert merged.apply(arr).tolist() == [0, 1, 1, 1, 4, 5]  # 5: in no class, left as is
    for bad, says in ((["brain=0,1"], "0 is background"), (["a=1,2", "b=2,3"], "two classes"),
                      (["x=1,1"], "repeats"), (["a=b"], "not a value"),
                      (["a=1", "a=2"], "twice")):
        with pytest.raises(MedsegError, match=says):
            parse_class_tokens(bad)


def _cube_maps():
    """A 20^3 grid: the prediction splits a 10^3 cube into three classes, the reference
    outlines the whole cube as 1."""
    pred = np.zeros((20, 20, 20), dtype=np.uint8)
    pred[5:15, 5:15, 5:8], pred[5:15, 5:15, 8:12], pred[5:15, 5:15, 12:15] = 1, 2, 3
    ref = np.zeros_like(pred)
    ref[5:15, 5:15, 5:15] = 1
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    return LabelMap.from_spatial(pred, affine), LabelMap.from_spatial(ref, affine)


def test_merged_classes_score_the_union_and_fewer_labels_are_warned():
    pred, ref = _cube_maps()
    rows = evaluate_pair(pred, ref)
    note = rows[-1]["note"]
    assert "fewer labels" in note and "2, 3 are scored against nothing" in note
    assert "NAME=1,2,3" in note
    assert rows[0]["dice"] == pytest.approx(2 * 300 / (300 + 1000))  # class 1 alone
    merged = evaluate_pair(pred, ref, parse_class_tokens(["brain=1,2,3"]))
    assert [r["class"] for r in merged] == ["brain", "all"]
    assert merged[0]["dice"] == 1.0 and merged[0]["pred_volume_ml"] == pytest.approx(2.0)
    assert "note" not in merged[-1]
    with pytest.raises(MedsegError, match="label values 3"):  # 3 left out of the classes
        evaluate_pair(pred, ref, parse_class_tokens(["brain=1,2"]))


def test_dataset_json_names_the_classes_of_unnamed_masks(tmp_path, capsys):
    ds = tmp_path / "Dataset"
    shutil.copytree(BRAIN / "labelsTs", ds / "labelsTs")
    shutil.copyfile(BRAIN / "dataset.json", ds / "dataset.json")
    assert main(["evaluate", "--pred", str(ds / "labelsTs"), "--ref", str(ds / "labelsTs"),
                 "-o", str(tmp_path / "report"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("white_matter", "grey_matter", "csf"):
        assert f"  {name} " in out
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert {"white_matter", "grey_matter", "csf"} <= set(summary["classes"])


@pytest.fixture(scope="module")
def head_prediction(tmp_path_factory):
    work = tmp_path_factory.mktemp("real_head")
    assert main(["segment", str(HEAD), "-m", "brain_tissue", "-o", str(work / "pred"),
                 "--quiet"]) == 0
    (work / "ref").mkdir()
    shutil.copyfile(OUTLINE, work / "ref" / HEAD.name)
    return work


def test_real_head_scored_as_brain_gives_the_readme_dice(head_prediction, capsys):
    work = head_prediction
    assert main(["evaluate", "--pred", str(work / "pred"), "--ref", str(work / "ref"),
                 "-o", str(work / "plain")]) == 0
    captured = capsys.readouterr()
    # names from the prediction's header, not 1..3; the outline is flagged before any score
    assert "  white_matter " in captured.out and "  grey_matter " in captured.out
    assert "the reference has fewer labels" in captured.err
    assert main(["evaluate", "--pred", str(work / "pred"), "--ref", str(work / "ref"),
                 "-o", str(work / "brain"), "--labels", "brain=1,2,3"]) == 0
    captured = capsys.readouterr()
    assert "fewer labels" not in captured.err
    summary = json.loads((work / "brain" / "summary.json").read_text())
    assert list(summary["classes"]) == ["brain", "all"]
    assert round(summary["classes"]["brain"]["metrics"]["dice"]["mean"], 3) == 0.961
    assert "  brain            Dice 0.96" in captured.out


def test_segment_sidecars_are_not_listed_as_ignored(head_prediction):
    pred = head_prediction / "pred"
    assert {p.name for p in pred.iterdir()} >= {"itk_t1_head.nii.gz",
                                                 "itk_t1_head_manifest.json",
                                                 "itk_t1_head_volumes.csv", "summary.json"}
    (pred / "notes.txt").write_text("not an image")
    try:
        pairing = pair_cases(pred, head_prediction / "ref")
    finally:
        (pred / "notes.txt").unlink()
    assert [c for c, _, _ in pairing.pairs] == ["itk_t1_head"]
    assert pairing.ignored == [str(pred / "notes.txt")]  # only what medseg did not write


def test_info_names_the_classes_of_a_medseg_mask(head_prediction, capsys):
    assert main(["info", str(head_prediction / "pred" / HEAD.name)]) == 0
    out = capsys.readouterr().out
    lines = out.split("labels", 1)[1].splitlines()[1:]
    assert [line.split()[0] for line in lines if line.strip()] == ["1", "2", "3"]  # no 0
    assert [line.split()[-1] for line in lines if line.strip()] == ["white_matter",
                                                                    "grey_matter", "csf"]
    assert "-0," not in out
