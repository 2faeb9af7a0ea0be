"""SAM-Med3D checkpoints: equal to the authors' inference, prompt checks, refused files.

The expected outputs in ``sample_data/sammed3d/`` were written by the authors' own code
(``utils/infer_utils.py`` of uni-medical/SAM-Med3D with their ``medim`` network and torchio
0.20.8) for a small random-initialised network of the published architecture, on two real
scans (``sample_data/scripts/make_sammed3d_fixtures.py``). Nothing here needs their packages
or their weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.cli import main
from medseg.engine.interactive import PromptSession
from medseg.engine.segmenter import Segmenter
from medseg.errors import InputError, MedsegError
from medseg.io.nifti import read_nifti
from medseg.models.base import InferenceSettings
from medseg.models.loading import describe_model, load_model
from medseg.models.sammed3d.checkpoint import read_state_dict
from medseg.models.sammed3d.network import architecture_of
from medseg.models.sammed3d.pipeline import crop_for, to_input
from medseg.prompts.types import Box, Point, Prompts
from medseg.volume import Volume

from .conftest import oblique_affine

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
FIXTURE = SAMPLE / "sammed3d"
MODEL = FIXTURE / "tiny_random"
CASES = ("t1_head", "ct_abdomen")


def _expected(case: str) -> dict:
    with np.load(FIXTURE / f"expected_{case}.npz") as data:
        return {k: data[k] for k in data.files}


def _unpack(bits: np.ndarray, shape) -> np.ndarray:
    shape = tuple(int(s) for s in shape)
    return np.unpackbits(bits)[: int(np.prod(shape))].reshape(shape).astype(bool)


def _prompts(e: dict) -> Prompts:
    return Prompts(tuple(Point(tuple(float(v) for v in p), bool(s))
                         for p, s in zip(e["points"], e["positive"], strict=True)))


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL, device="cpu")


@pytest.fixture(scope="module")
def runs(model):
    """Each case run once through prepare / predict / restore."""
    out = {}
    for case in CASES:
        e = _expected(case)
        settings = InferenceSettings(prompts=_prompts(e), probabilities=True)
        prepared = model.prepare(read_nifti(SAMPLE / str(e["image"])), settings)
        probs = model.predict(prepared, settings)
        out[case] = (e, prepared, probs, model.restore(prepared, probs, settings))
    return out


def test_format_is_registered_and_described():
    info = describe_model(MODEL)
    assert info.format == "sammed3d"
    assert info.prompts == ("point", "mask")
    assert dict(info.labels) == {"background": 0, "object": 1}
    assert info.spacing == (1.5, 1.5, 1.5) and info.patch_size == (128, 128, 128)
    assert info.details["licence"] == "Apache-2.0"


def test_architecture_is_read_from_the_checkpoint(model):
    arch = model.net.arch
    assert (arch.img_size, arch.patch, arch.dim, arch.depth, arch.heads) == (128, 16, 24, 2, 2)
    assert arch.window == 14 and arch.global_blocks == (1,)
    assert (arch.prompt_dim, arch.decoder_mlp_dim, arch.mask_tokens) == (48, 2048, 4)


@pytest.mark.parametrize("case", CASES)
def test_crop_matches_the_authors_pipeline(runs, case):
    e, prepared, _, _ = runs[case]
    crop = prepared.crop
    np.testing.assert_allclose(crop.affine, e["roi_affine"], atol=1e-6)
    np.testing.assert_array_equal(crop.points, e["roi_points"])
    image = crop.image[0, 0].numpy()
    np.testing.assert_allclose(image[::4, ::4, ::4], e["roi_image_every4"], atol=1e-5)
    assert abs(float(image.astype(np.float64).mean()) - float(e["roi_image_mean"])) < 1e-5


@pytest.mark.parametrize("case", CASES)
def test_logits_and_masks_match_the_authors(runs, case):
    e, prepared, probs, prediction = runs[case]
    logits = prepared.low_res_logits[0, 0].numpy()
    assert logits.shape == e["low_res_logits"].shape == (32, 32, 32)
    np.testing.assert_allclose(logits, e["low_res_logits"], atol=1e-4)
    roi = _unpack(e["roi_mask"], e["roi_shape"])
    assert 0.05 < roi.mean() < 0.95  # a mask with both classes, so agreement means something
    assert ((probs[1].numpy() > 0.5) == roi).mean() >= 0.999
    theirs = _unpack(e["input_mask"], e["input_shape"])
    assert prediction.channels.shape == theirs.shape
    assert (prediction.channels.astype(bool) == theirs).mean() >= 0.999
    assert theirs.any()
    np.testing.assert_allclose(prediction.probabilities.sum(axis=0), 1.0, atol=1e-6)


def test_segmenter_gives_the_authors_mask_on_the_input_grid(model):
    e = _expected("ct_abdomen")
    volume = read_nifti(SAMPLE / str(e["image"]))
    result = Segmenter(model, InferenceSettings(device="cpu"))(volume, "ct.nii.gz",
                                                               prompts=_prompts(e))
    theirs = _unpack(e["input_mask"], e["input_shape"])
    assert result.labels.spatial_shape == volume.spatial_shape
    np.testing.assert_allclose(result.labels.affine, volume.affine)
    assert ((result.labels.data != 0) == theirs).mean() >= 0.999


def test_cli_segment_with_points_writes_the_authors_mask(tmp_path):
    e = _expected("ct_abdomen")
    points = [f"{int(i)},{int(j)},{int(k)}:{'+' if s else '-'}"
              for (i, j, k), s in zip(e["points"], e["positive"], strict=True)]
    argv = ["segment", str(SAMPLE / str(e["image"])), "-o", str(tmp_path), "-m", str(MODEL),
            "--voxel", "--label", "lesion", "--device", "cpu"]
    for point in points:
        argv += ["--point", point]
    assert main(argv) == 0
    written = read_nifti(tmp_path / "lung2_upper_abdomen.nii.gz")
    theirs = _unpack(e["input_mask"], e["input_shape"])
    assert ((written.array[0] != 0) == theirs).mean() >= 0.999
    volumes = json.loads((tmp_path / "lung2_upper_abdomen_volumes.json").read_text())
    assert "lesion" in json.dumps(volumes)


def test_mask_prompt_centres_the_crop_and_changes_the_answer(model, runs):
    e, prepared, _, _ = runs["ct_abdomen"]
    volume = read_nifti(SAMPLE / str(e["image"]))
    mask = np.zeros(volume.spatial_shape, bool)
    mask[20:40, 20:40, 4:8] = True  # far from the points: the crop moves to cover it too
    settings = InferenceSettings(prompts=_prompts(e).with_mask(mask))
    with_mask = model.prepare(volume, settings)
    assert with_mask.crop.mask is not None and with_mask.crop.mask.any()
    assert not np.allclose(with_mask.crop.affine, prepared.crop.affine)
    model.predict(with_mask, settings)
    assert not np.allclose(with_mask.low_res_logits, prepared.low_res_logits, atol=1e-3)


def test_prompt_session_refines_with_the_previous_mask_and_undoes(model):
    """First click: the authors' single-click answer; the second gets the first mask too."""
    e = _expected("t1_head")
    volume = read_nifti(SAMPLE / str(e["image"]))
    session = PromptSession(Segmenter(model, InferenceSettings(device="cpu")), volume, "t1")
    assert session.refines
    first = session.add_point(tuple(float(v) for v in e["points"][0]))
    theirs = _unpack(e["input_mask"], e["input_shape"])
    assert first.shape == volume.spatial_shape and (first == theirs).mean() >= 0.999
    second = session.add_point((40.0, 40.0, 30.0), positive=False)
    assert second.shape == volume.spatial_shape and not np.array_equal(first, second)
    np.testing.assert_array_equal(session.undo(), first)


def test_crop_geometry_on_an_oblique_grid():
    """The point lands on its crop voxel, and a map of the crop comes back where it was."""
    affine = oblique_affine(spacing=(1.1, 0.8, 2.6))
    rng = np.random.default_rng(1)
    volume = Volume.from_spatial(rng.uniform(1, 100, (60, 70, 30)).astype(np.float32), affine)
    point = (30.0, 35.0, 15.0)
    crop = crop_for(volume, Prompts((Point(point),)), size=128, spacing=(1.5, 1.5, 1.5))
    assert crop.points.tolist() == [[64, 64, 64]]
    world_point = volume.world_coordinates(point)[0]
    world_voxel = (crop.affine @ [64, 64, 64, 1])[:3]
    assert np.linalg.norm(world_point - world_voxel) <= 0.75 * np.sqrt(3) + 1e-6
    cube = np.zeros((128,) * 3, np.float32)
    cube[54:75, 54:75, 54:75] = 1  # 31.5 mm around the point
    back = to_input(cube, crop)
    assert back.shape == volume.spatial_shape
    assert back[30, 35, 15] == 1 and back[0, 0, 0] == 0 and back[59, 69, 29] == 0
    inside = np.argwhere(back > 0)
    distances = np.linalg.norm(volume.world_coordinates(inside) - world_point, axis=1)
    assert distances.max() < 15.75 * np.sqrt(3) + 2


@pytest.mark.parametrize(("prompts", "message"), [
    (Prompts((Point((500.0, 1.0, 1.0)),)), "outside the image"),
    (Prompts(boxes=(Box((10.0, 10.0, 2.0), (20.0, 20.0, 6.0)),)), "not box"),
    (Prompts(mask=np.ones((128, 128, 24), bool)), "a mask alone"),
])
def test_bad_prompts_are_one_line_errors(model, prompts, message):
    volume = read_nifti(SAMPLE / "real_ct/lung2_upper_abdomen.nii.gz")
    with pytest.raises(InputError) as err:
        Segmenter(model, InferenceSettings(device="cpu"))(volume, "ct.nii.gz", prompts=prompts)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_no_prompts_is_an_error(model):
    volume = read_nifti(SAMPLE / "real_ct/lung2_upper_abdomen.nii.gz")
    with pytest.raises(InputError, match="give prompts"):
        Segmenter(model, InferenceSettings(device="cpu"))(volume, "ct.nii.gz")


def test_points_of_more_than_one_crop_are_refused():
    volume = Volume.from_spatial(np.ones((300, 8, 8), np.float32), np.eye(4))
    prompts = Prompts((Point((5.0, 4.0, 4.0)), Point((290.0, 4.0, 4.0))))
    with pytest.raises(MedsegError, match=r"point\(s\) 1, 2 fall outside the crop"):
        crop_for(volume, prompts, size=128, spacing=(1.5, 1.5, 1.5))


def test_crop_without_positive_voxels_is_refused():
    volume = Volume.from_spatial(np.full((40, 40, 40), -5.0, np.float32), np.eye(4))
    with pytest.raises(MedsegError, match="above 0"):
        crop_for(volume, Prompts((Point((20.0, 20.0, 20.0)),)), size=128,
                 spacing=(1.5, 1.5, 1.5))


def _state(path: Path) -> dict:
    """A copy in memory (the loader memory-maps the file, which the tests then rewrite)."""
    return {k: v.clone() for k, v in read_state_dict(path).items()}


def _copy_model(tmp_path: Path) -> Path:
    folder = tmp_path / "sam"
    shutil.copytree(MODEL, folder)
    return folder


def test_truncated_checkpoint_is_one_line_naming_the_file(tmp_path):
    folder = _copy_model(tmp_path)
    ckpt = folder / "sam_med3d_tiny.pth"
    ckpt.write_bytes(ckpt.read_bytes()[: 100_000])
    with pytest.raises(InputError) as err:
        load_model(folder, device="cpu")
    text = str(err.value)
    assert str(ckpt) in text and "\n" not in text and "corrupt" in text


def test_pickled_objects_are_refused_not_unpickled(tmp_path):
    folder = _copy_model(tmp_path)
    ckpt = folder / "sam_med3d_tiny.pth"
    state = _state(ckpt)
    torch.save({"model_state_dict": state, "args": argparse.Namespace(lr=1e-4)}, ckpt)
    with pytest.raises(InputError) as err:
        load_model(folder, device="cpu")
    text = str(err.value)
    assert "argparse.Namespace" in text and str(ckpt) in text and "\n" not in text


def test_bare_and_prefixed_state_dicts_load(tmp_path):
    state = read_state_dict(MODEL / "sam_med3d_tiny.pth")
    bare = tmp_path / "bare.pth"
    torch.save(state, bare)
    assert read_state_dict(bare).keys() == state.keys()
    prefixed = tmp_path / "ddp.pth"
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in state.items()}}, prefixed)
    assert architecture_of(read_state_dict(prefixed)) == architecture_of(state)


def test_state_dict_of_another_network_is_refused(tmp_path):
    folder = _copy_model(tmp_path)
    ckpt = folder / "sam_med3d_tiny.pth"
    state = _state(ckpt)
    del state["mask_decoder.iou_token.weight"]
    torch.save(state, ckpt)
    with pytest.raises(InputError, match=r"not a SAM-Med3D checkpoint.*iou_token"):
        load_model(folder, device="cpu")


@pytest.mark.parametrize(("doc", "message"), [
    ({"format": "other", "checkpoint": "sam_med3d_tiny.pth"}, "'format' must be 'sammed3d'"),
    ({"format": "sammed3d"}, "names no 'checkpoint'"),
    ({"format": "sammed3d", "checkpoint": "../outside.pth"}, "outside the model folder"),
    ({"format": "sammed3d", "checkpoint": "missing.pth"}, "checkpoint not found"),
])
def test_bad_sammed3d_json(tmp_path, doc, message):
    folder = _copy_model(tmp_path)
    (tmp_path / "outside.pth").write_bytes(b"x")
    (folder / "sammed3d.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=message):
        describe_model(folder)
