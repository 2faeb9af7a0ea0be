"""``medseg segment --point/--box/--voxel/--init/--label/--prompts`` through the CLI, with a
promptable model from a plugin (tests/plugin_regiongrow.py) on volumes of known geometry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main
from medseg.io import read_image
from tests import plugin_regiongrow
from tests.conftest import oblique_affine

SHAPE = (40, 36, 24)
#: two bright blobs of different intensity on a dark, noisy background (voxel centres, radii)
BLOBS = {"a": ((12, 12, 8), 5, 400.0), "b": ((28, 24, 16), 6, 250.0)}


def _truth(name: str) -> np.ndarray:
    centre, radius, _ = BLOBS[name]
    ijk = np.indices(SHAPE).transpose(1, 2, 3, 0)
    return ((ijk - centre) ** 2).sum(-1) <= radius ** 2


@pytest.fixture
def setup(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    image = rng.normal(0, 10, SHAPE)
    for name, (_, _, value) in BLOBS.items():
        image[_truth(name)] = value + rng.normal(0, 10, _truth(name).sum())
    affine = oblique_affine(spacing=(1.2, 0.9, 2.5))
    path = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(image.astype(np.int16), affine), path)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(plugin_regiongrow.__file__, plugins / "plugin_regiongrow.py")
    monkeypatch.setenv("MEDSEG_PLUGINS_DIR", str(plugins))
    model = plugin_regiongrow.write_model(tmp_path / "grow")
    return path, affine, model, tmp_path


def _world(affine, ijk) -> str:
    return ",".join(f"{v:.4f}" for v in (affine @ [*ijk, 1.0])[:3])


def _mask(out: Path, case: str = "case") -> nib.Nifti1Image:
    return nib.load(out / f"{case}.nii.gz")


def _dice(a, b) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_a_click_in_world_mm_segments_that_object_on_the_input_grid(setup, capsys):
    path, affine, model, tmp = setup
    out = tmp / "out"
    code = main(["segment", str(path), "-o", str(out), "-m", str(model),
                 "--point", _world(affine, BLOBS["a"][0]), "--label", "nodule", "--quiet"])
    assert code == 0
    seg = _mask(out)
    assert np.allclose(seg.affine, affine, atol=1e-4) and seg.shape == SHAPE
    data = np.asarray(seg.dataobj)
    assert _dice(data == 1, _truth("a")) > 0.99 and not (data[_truth("b")]).any()
    assert "nodule" in capsys.readouterr().out  # the volumes line names the object
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary[0]["volumes_ml"]) == ["nodule"]


def test_voxel_points_negative_points_and_boxes(setup):
    path, _, model, tmp = setup
    both = ["--point", "12,12,8", "--point", "28,24,16:+"]
    # the mean of the two clicks is within the tolerance of both blobs: both are segmented
    assert main(["segment", str(path), "-o", str(tmp / "o1"), "-m", str(model), "--voxel",
                 *both, "--quiet"]) == 0
    two = np.asarray(_mask(tmp / "o1").dataobj) == 1
    assert _dice(two, _truth("a") | _truth("b")) > 0.99
    # a negative click near blob b's top removes the part of b nearer to it
    assert main(["segment", str(path), "-o", str(tmp / "o2"), "-m", str(model), "--voxel",
                 *both, "--point", "28,24,20:-", "--quiet"]) == 0
    cut = np.asarray(_mask(tmp / "o2").dataobj) == 1
    z = np.indices(SHAPE)[2]
    assert (cut == two)[z <= 17].all()  # the plane between the two clicks is z = 18
    assert not cut[_truth("b") & (z >= 19)].any()
    # a 3-D box around blob b alone, and a 2-D box on one slice through it
    assert main(["segment", str(path), "-o", str(tmp / "o3"), "-m", str(model), "--voxel",
                 "--box", "21,17,9,35,31,23", "--quiet"]) == 0
    assert _dice(np.asarray(_mask(tmp / "o3").dataobj) == 1, _truth("b")) > 0.99
    assert main(["segment", str(path), "-o", str(tmp / "o4"), "-m", str(model), "--voxel",
                 "--box", "21,17,16,35,31,16", "--quiet"]) == 0
    assert _dice(np.asarray(_mask(tmp / "o4").dataobj) == 1, _truth("b")) > 0.99


def test_a_prompts_file_gives_each_case_its_own_prompts(setup):
    path, affine, model, tmp = setup
    second = tmp / "second.nii.gz"
    shutil.copy(path, second)
    prompts = tmp / "prompts.json"
    prompts.write_text(json.dumps({"cases": [
        {"image": path.name, "points": [_world(affine, BLOBS["a"][0]) + ":+"]},
        {"image": second.name, "voxel": True, "points": [{"position": [28, 24, 16]}]}]}))
    out = tmp / "out"
    assert main(["segment", "-o", str(out), "-m", str(model), "--prompts", str(prompts),
                 "--quiet"]) == 0
    assert _dice(np.asarray(_mask(out).dataobj) == 1, _truth("a")) > 0.99
    assert _dice(np.asarray(_mask(out, "second").dataobj) == 1, _truth("b")) > 0.99
    # the same prompts again: done earlier; other prompts: redone
    assert main(["segment", "-o", str(out), "-m", str(model), "--prompts", str(prompts),
                 "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["status"] for r in summary] == ["skipped", "skipped"]
    assert main(["segment", str(path), "-o", str(out), "-m", str(model), "--voxel",
                 "--point", "28,24,16", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())[0]["status"] == "ok"
    assert _dice(np.asarray(_mask(out).dataobj) == 1, _truth("b")) > 0.99


@pytest.mark.parametrize(("flags", "message"), [
    (["--voxel", "--point", "60,12,8"], "is outside the image (40x36x24 voxels)"),
    (["--point", "9999,0,0"], "mm (voxel"),
    (["--voxel", "--box", "5,5,5,5,5,20"], "has zero size on 2 axes"),
    (["--voxel", "--point", "1,2"], "has 2 coordinates but the image is 3-D"),
])
def test_bad_prompts_are_one_line_errors_naming_the_file(setup, capsys, flags, message):
    path, _, model, tmp = setup
    out = tmp / "out"
    assert main(["segment", str(path), "-o", str(out), "-m", str(model), *flags,
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and message in err[0], err
    assert not (out / "case.nii.gz").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--point", "1,2,3:x"], "the sign after ':' must be + or -"),
    (["--box", "1,2,3"], "give two corners"),
    (["--point", "a,b,c"], "coordinates must be numbers"),
])
def test_malformed_prompt_text_is_a_usage_error(setup, capsys, flags, message):
    path, _, model, tmp = setup
    with pytest.raises(SystemExit) as exc:
        main(["segment", str(path), "-o", str(tmp / "out"), "-m", str(model), *flags])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_prompts_and_models_must_match(setup, capsys):
    path, _, model, tmp = setup
    brain = Path(__file__).parents[1] / "sample_data" / "models" / "brain_tissue"
    assert main(["segment", str(path), "-o", str(tmp / "o"), "-m", str(brain),
                 "--point", "0,0,0"]) != 0
    assert "takes no prompts" in capsys.readouterr().err
    assert main(["segment", str(path), "-o", str(tmp / "o"), "-m", str(model)]) != 0
    assert "segments what it is pointed at" in capsys.readouterr().err
    assert main(["segment", str(path), "-o", str(tmp / "o"), "-m", str(model),
                 "--init", str(path)]) != 0
    assert "add --point or --box" in capsys.readouterr().err


def test_a_prompted_dicom_series_gets_a_dicom_seg_named_by_label(setup):
    pydicom = pytest.importorskip("pydicom")
    _, _, model, tmp = setup
    series = Path(__file__).parents[1] / "sample_data" / "dicom" / "ct_phantom_001"
    reference = nib.load(Path(__file__).parents[1] / "sample_data" / "Dataset002_AbdomenCT"
                         / "labelsTs" / "abdomen_101.nii.gz")
    out = tmp / "out"
    image = read_image(series)
    liver = np.argwhere(np.asarray(reference.dataobj) == 1)
    centre = liver[np.argmin(((liver - liver.mean(0)) ** 2).sum(1))]
    world = reference.affine @ [*centre, 1.0]
    assert main(["segment", str(series), "-o", str(out), "-m", str(model), "--dicom-seg",
                 "--point", ",".join(f"{v:.3f}" for v in world[:3]), "--label", "liver",
                 "--quiet"]) == 0
    mask = nib.load(next(out.glob("*.nii.gz")))
    assert mask.shape == image.spatial_shape
    seg = pydicom.dcmread(next(out.glob("*.dcm")))
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver"]


def test_info_says_what_prompts_a_model_takes(setup, capsys):
    _, _, model, _ = setup
    assert main(["info", str(model)]) == 0
    assert "prompts      point, box" in capsys.readouterr().out
    assert main(["info", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompts"] == ["point", "box"]


def test_init_mask_is_refined_by_a_click_with_click3d(setup):
    """``--init`` hands a mask to a model that refines one (the shipped click3d): a positive
    click on a second blob adds it to the mask of the first, and the mask shapes the answer."""
    path, _, model, tmp = setup
    init = tmp / "init.nii.gz"
    image = nib.load(path)
    nib.save(nib.Nifti1Image(_truth("a").astype(np.uint8), image.affine), init)
    out = tmp / "out"
    assert main(["segment", str(path), "-o", str(out), "-m", "click3d", "--voxel",
                 "--init", str(init), "--point", "28,24,16", "--quiet"]) == 0
    mask = np.asarray(_mask(out).dataobj) != 0
    assert mask[_truth("a")].mean() > 0.8 and mask[_truth("b")].mean() > 0.8
    assert main(["segment", str(path), "-o", str(tmp / "o1"), "-m", "click3d", "--voxel",
                 "--point", "28,24,16", "--quiet"]) == 0
    alone = np.asarray(_mask(tmp / "o1").dataobj) != 0
    # the same click without the mask gives the second blob alone: the first came from the mask
    assert alone[_truth("b")].mean() > 0.8 and alone[_truth("a")].mean() < 0.1
    assert alone.sum() < 1.5 * _truth("b").sum()
    # the region-growing model takes no mask: refused before anything is written
    assert main(["segment", str(path), "-o", str(tmp / "o2"), "-m", str(model), "--voxel",
                 "--init", str(init), "--point", "12,12,8", "--quiet"]) == 2
    assert not (tmp / "o2" / "case.nii.gz").exists()


def test_answer_picks_one_of_click3d_answers_and_a_rerun_with_another_is_redone(tmp_path):
    """``--answer K``: a click in a kidney's renal sinus (a Dataset002 training case, whose
    kidneys were never a training target) is the sinus fat with answer 1 and the kidney with
    another; the manifest records the answer, so a rerun with another one is not skipped."""
    from medseg.evaluation.interactive_run import check_pair
    from medseg.prompts.simulate import first_click

    data = Path(__file__).parents[1] / "sample_data" / "Dataset002_AbdomenCT"
    path = data / "imagesTr" / "abdomen_000_0000.nii.gz"
    image, label = check_pair(path, data / "labelsTr" / "abdomen_000.nii.gz")
    kidney = label.data == 3
    ijk = ",".join(str(round(c)) for c in first_click(kidney, image.spacing).position)
    out = tmp_path / "out"
    dices = []
    for answer in ("1", "2", "3"):
        assert main(["segment", str(path), "-o", str(out), "-m", "click3d", "--voxel",
                     "--point", ijk, "--answer", answer, "--quiet"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary[0]["status"] == "ok"
        dices.append(_dice(np.asarray(_mask(out, "abdomen_000").dataobj) != 0, kidney))
    assert dices[0] < 0.3 and max(dices[1:]) >= 0.8
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"voxel": True, "cases": [
        {"image": str(path), "points": [ijk], "answer": 1 + int(np.argmax(dices))}]}))
    assert main(["segment", "-o", str(tmp_path / "o2"), "-m", "click3d", "--prompts",
                 str(prompts), "--quiet"]) == 0
    mask = np.asarray(_mask(tmp_path / "o2", "abdomen_000").dataobj) != 0
    assert _dice(mask, kidney) == pytest.approx(max(dices))


@pytest.mark.parametrize(("answer", "message"), [
    ("2", "answer 2: model 'grow' offers 1 answer to a prompt"),
    ("0", "answer 0: answers are whole numbers counted from 1"),
])
def test_an_answer_the_model_does_not_offer_is_one_line(setup, capsys, answer, message):
    path, _, model, tmp = setup
    out = tmp / "out"
    assert main(["segment", str(path), "-o", str(out), "-m", str(model), "--voxel",
                 "--point", "12,12,8", "--answer", answer, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and message in err[0], err
    assert not (out / "case.nii.gz").exists()


def test_a_bad_answer_in_a_prompts_file_names_the_file(setup, capsys):
    path, _, model, tmp = setup
    prompts = tmp / "prompts.json"
    prompts.write_text(json.dumps({"voxel": True, "cases": [
        {"image": path.name, "points": ["12,12,8"], "answer": "two"}]}))
    assert main(["segment", "-o", str(tmp / "out"), "-m", str(model), "--prompts",
                 str(prompts), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(prompts) in err[0] and "'answer' must be a whole number" \
        in err[0], err
