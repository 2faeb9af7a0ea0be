"""SAM-family checkpoints (MedSAM ViT-B pipeline): medseg's own network and pipeline against the
logits and masks that the authors' code (segment-anything 1.0 + MedSAM's inference steps)
produced for a small random-initialised SAM on real CT and MR slices
(``sample_data/sam/``, made by ``sample_data/scripts/make_sam_fixtures.py``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.cli import main
from medseg.engine.interactive import PromptSession
from medseg.engine.segmenter import Segmenter
from medseg.errors import InputError
from medseg.io import read_image
from medseg.models.loading import describe_model, load_model, resolve_model
from medseg.models.sam.config import config_from_state_dict
from medseg.models.sam.network import SamNetwork
from medseg.models.sam.preprocessing import volume_to_uint8
from medseg.models.sam.slices import nearest_upsample_box, plan_slices, put_slice, slice_image
from medseg.prompts.types import Box, Point, Prompts
from medseg.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "sample_data" / "sam"
MODEL = FIXTURES / "tiny_medsam"
MANIFEST = json.loads((FIXTURES / "fixtures.json").read_text())
CASES = {c["name"]: c for c in MANIFEST["cases"]}
#: the authors' SimpleITK arrays are Z, Y, X: their axis a is medseg's array axis 2 - a
LOGIT_TOLERANCE = 1e-4
MASK_AGREEMENT = 0.999


@pytest.fixture(scope="module")
def arrays():
    with np.load(FIXTURES / "fixtures.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL)


def _unpack(packed: np.ndarray, shape) -> np.ndarray:
    return np.unpackbits(packed)[: int(np.prod(shape))].reshape(shape).astype(bool)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.asarray(a, bool) == np.asarray(b, bool)).mean())


def test_format_is_registered_and_described_from_sam_json_alone(registry, tmp_path):
    _, spec = resolve_model(MODEL, registry)
    assert spec.name == "sam"
    folder = tmp_path / "m"
    shutil.copytree(MODEL, folder)
    (folder / "tiny_medsam.pth").write_bytes(b"not a checkpoint")  # describe never opens it
    info = describe_model(folder, registry)
    assert info.format == "sam" and info.prompts == ("box", "point")
    assert info.labels == {"background": 0, "object": 1}
    assert info.details["variant"] == "medsam_tiny_random"


def test_network_shape_is_read_from_the_weights(model):
    cfg = model.config
    assert (cfg.image_size, cfg.patch_size, cfg.embed_dim, cfg.depth) == (1024, 16, 32, 3)
    assert (cfg.encoder_heads, cfg.window_size, cfg.global_attn_indexes) == (2, 14, (1,))
    assert (cfg.prompt_dim, cfg.decoder_heads, cfg.decoder_mlp_dim) == (32, 4, 64)


@pytest.mark.parametrize("kw", [
    {"embed_dim": 48, "depth": 2, "encoder_heads": 3, "global_attn_indexes": (0,),
     "window_size": 8, "image_size": 256, "prompt_dim": 16, "decoder_heads": 2},
    {"embed_dim": 24, "depth": 4, "encoder_heads": 4, "global_attn_indexes": (1, 3),
     "window_size": 5, "image_size": 128, "patch_size": 8, "prompt_dim": 64,
     "decoder_depth": 1, "decoder_mlp_dim": 32, "iou_head_hidden": 16},
])
def test_other_small_sams_round_trip_through_their_state_dict(tmp_path, kw):
    from medseg.models.sam.config import SamConfig
    cfg = SamConfig(**{**kw, "mlp_dim": 4 * kw["embed_dim"]})
    state = SamNetwork(cfg).state_dict()
    path = tmp_path / "w.pth"
    torch.save(state, path)
    got = config_from_state_dict(torch.load(path, weights_only=True), path,
                                 {"decoder_heads": cfg.decoder_heads})
    assert got == cfg


@pytest.mark.parametrize("name", sorted(CASES))
def test_logits_and_masks_equal_the_authors_code(model, arrays, name):
    case = CASES[name]
    volume = read_image(ROOT / case["file"])
    data = volume.array[0]
    assert model.intensity_mode(data) == ("ct" if name.startswith("ct") else "mr")
    image = slice_image(volume_to_uint8(data, model.intensity_mode(data)),
                        2 - case["sitk_axis"], case["index"])
    assert list(image.shape) == case["shape"]
    box = None if case["box"] is None else np.array(case["box"], float)
    points = None if case["points"] is None else np.array(case["points"], float)
    emb = model.embed(image)
    logits = model.low_res_logits(emb, image.shape, box, points)
    theirs = arrays[f"{name}_logits"]
    assert logits.shape == theirs.shape == (1, 1, 256, 256)
    assert float(np.abs(logits.numpy() - theirs).max()) <= LOGIT_TOLERANCE
    mask = model.probability(logits, image.shape) > 0.5
    reference = _unpack(arrays[f"{name}_mask"], image.shape)
    assert 0.05 < reference.mean() < 0.95  # a mask with both classes, not a blank
    assert _agreement(mask, reference) >= MASK_AGREEMENT
    assert model.embed(image.copy()) is emb  # the slice's embedding is kept for the next prompt


@pytest.mark.parametrize("name", sorted(CASES))
def test_answers_2_to_4_are_sams_multimask_outputs(model, arrays, name):
    """SAM's three masks for an ambiguous prompt (``multimask_output=True`` in the authors'
    decoder) are the model's answers 2-4; answer 1 stays MedSAM's single mask."""
    case = CASES[name]
    volume = read_image(ROOT / case["file"])
    data = volume.array[0]
    image = slice_image(volume_to_uint8(data, model.intensity_mode(data)),
                        2 - case["sitk_axis"], case["index"])
    box = None if case["box"] is None else np.array(case["box"], float)
    points = None if case["points"] is None else np.array(case["points"], float)
    emb = model.embed(image)
    theirs = arrays[f"{name}_multimask_logits"]
    assert theirs.shape == (1, 3, 256, 256)
    assert model.info.answers == 4 and describe_model(MODEL).answers == 4
    for answer in (1, 2, 3):
        logits = model.low_res_logits(emb, image.shape, box, points, answer=answer)
        assert logits.shape == (1, 1, 256, 256)
        assert float(np.abs(logits.numpy() - theirs[:, answer - 1:answer]).max()) \
            <= LOGIT_TOLERANCE
    single = model.low_res_logits(emb, image.shape, box, points)
    assert float(np.abs(single.numpy() - arrays[f"{name}_logits"]).max()) <= LOGIT_TOLERANCE


def test_a_prompt_session_picks_another_answer_for_points(model, arrays):
    """Points alone on the MR's axial slice: choosing answer 3 gives SAM's second multimask
    mask on that slice (the authors' logits, thresholded as MedSAM does), undo the single one."""
    case = CASES["mr_axial_points"]
    mr = read_image(ROOT / case["file"])
    j = case["index"]
    session = PromptSession(Segmenter(load_model(MODEL, propagate=False)), mr)
    first = None
    for x, y, lab in case["points"]:
        first = session.add_point((float(x), float(j), float(y)), bool(lab))
    assert session.answers == 4
    single = _unpack(arrays["mr_axial_points_mask"], case["shape"])
    assert _agreement(slice_image(first, 1, j), single) >= MASK_AGREEMENT
    picked = session.choose(2)
    theirs = torch.from_numpy(arrays["mr_axial_points_multimask_logits"][:, 1:2])
    reference = model.probability(theirs, tuple(case["shape"])) > 0.5
    assert _agreement(reference, single) < 0.99  # another mask, not the same one again
    assert _agreement(slice_image(picked, 1, j), reference) >= MASK_AGREEMENT
    assert np.array_equal(np.nonzero(picked.sum(axis=(0, 2)))[0], [j])
    assert np.array_equal(session.undo(), first)


def test_a_prompt_session_clicks_on_the_boxed_slice_and_undoes(arrays):
    case = CASES["ct_box"]
    ct = read_image(ROOT / case["file"])
    x0, y0, x1, y1 = case["box"]
    session = PromptSession(Segmenter(load_model(MODEL, propagate=False)), ct)
    boxed = session.add_box((x0, y0, 12), (x1, y1, 12))
    reference = _unpack(arrays["ct_box_mask"], case["shape"])
    assert _agreement(slice_image(boxed, 2, 12), reference) >= MASK_AGREEMENT
    assert boxed.sum() == boxed[:, :, 12].sum()
    clicked = session.add_point((50, 60, 12), positive=False)
    assert not np.array_equal(clicked, boxed) and clicked.sum() == clicked[:, :, 12].sum()
    assert np.array_equal(session.undo(), boxed)


def test_2d_box_propagates_slice_by_slice_like_the_authors_script(arrays):
    prop = MANIFEST["propagation"]
    ct = read_image(ROOT / prop["file"])
    first, last = prop["slab"]
    part = Volume(np.ascontiguousarray(ct.array[:, :, :, first:last + 1]), ct.affine)
    x0, y0, x1, y1 = prop["box"]
    k = prop["index"] - first
    seg = Segmenter(load_model(MODEL))(part, prompts=Prompts(boxes=(
        Box((x0, y0, k), (x1, y1, k)),)))
    ours = seg.labels.data == 1
    theirs = _unpack(arrays["propagation_mask"], prop["shape"]).transpose(2, 1, 0)  # z,y,x
    assert sorted(prop["slices"]) == list(range(first, last + 1))
    assert _agreement(ours, theirs) >= MASK_AGREEMENT
    assert seg.label_names == {0: "background", 1: "object"}


def test_3d_box_segments_its_slices_only(arrays):
    case = CASES["ct_box"]  # slice 12, box 30,40 - 95,100
    ct = read_image(ROOT / case["file"])
    x0, y0, x1, y1 = case["box"]
    seg = Segmenter(load_model(MODEL))(ct, prompts=Prompts(boxes=(
        Box((x0, y0, 11), (x1, y1, 13)),)))
    labels = seg.labels.data
    per_slice = labels.reshape(-1, labels.shape[2]).sum(axis=0)
    assert set(np.nonzero(per_slice)[0]) <= {11, 12, 13} and per_slice[12] > 0
    reference = _unpack(arrays["ct_box_mask"], case["shape"])
    assert _agreement(slice_image(labels, 2, 12) == 1, reference) >= MASK_AGREEMENT


def test_cli_segment_with_a_3d_box_writes_the_authors_mask(tmp_path, arrays):
    case = CASES["ct_box"]
    x0, y0, x1, y1 = case["box"]
    argv = ["segment", str(ROOT / case["file"]), "-o", str(tmp_path), "-m", str(MODEL),
            "--voxel", "--box", f"{x0},{y0},12,{x1},{y1},13", "--label", "organ",
            "--device", "cpu"]
    assert main(argv) == 0
    written = read_image(tmp_path / "lung2_upper_abdomen.nii.gz").data
    assert set(np.nonzero(written.sum(axis=(0, 1)))[0]) <= {12, 13}
    reference = _unpack(arrays["ct_box_mask"], case["shape"])
    assert _agreement(slice_image(written, 2, 12) != 0, reference) >= MASK_AGREEMENT
    volumes = json.loads((tmp_path / "lung2_upper_abdomen_volumes.json").read_text())
    assert "organ" in json.dumps(volumes)


def test_points_alone_on_the_axial_slice_of_an_lsa_image(arrays):
    case = CASES["mr_axial_points"]  # SimpleITK's y axis = the image's axial (S) axis
    mr = read_image(ROOT / case["file"])
    j = case["index"]
    points = tuple(Point((float(x), float(j), float(y)), bool(lab))
                   for x, y, lab in case["points"])
    seg = Segmenter(load_model(MODEL, propagate=False))(mr, prompts=Prompts(points=points))
    labels = seg.labels.data
    assert np.array_equal(np.nonzero(labels.sum(axis=(0, 2)))[0], [j])
    reference = _unpack(arrays["mr_axial_points_mask"], case["shape"])
    assert _agreement(slice_image(labels, 1, j) == 1, reference) >= MASK_AGREEMENT


def test_prompt_errors_are_one_line():
    shape, affine = (20, 20, 10), np.eye(4)
    two_axes = Prompts(boxes=(Box((1, 1, 3), (5, 5, 3)), Box((2, 1, 1), (2, 6, 6))))
    with pytest.raises(InputError, match="different axes") as err:
        plan_slices(two_axes, shape, affine, "axial", True)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="needs a box or a point"):
        plan_slices(Prompts(), shape, affine, "axial", True)
    vol = Volume.from_spatial(np.zeros(shape, np.float32), affine)
    with pytest.raises(InputError, match="pointed at"):
        Segmenter(load_model(MODEL))(vol)
    with pytest.raises(InputError, match="zero size"):
        Segmenter(load_model(MODEL))(vol, prompts=Prompts(boxes=(Box((1, 1, 3), (1, 5, 3)),)))


def test_slice_plan_groups_points_with_boxes_and_picks_the_axial_axis():
    lsa = np.array([[-2.0, 0, 0, 0], [0, 0, 3, 0], [0, 2, 0, 0], [0, 0, 0, 1]])  # L, S, A
    prompts = Prompts(points=(Point((4, 7, 2)), Point((5, 7, 3), False), Point((1, 2, 3))),
                      boxes=(Box((1, 7, 1), (9, 7, 8)),))
    plan = plan_slices(prompts, (10, 12, 9), lsa, "axial", True)
    assert plan.axis == 1
    assert [s.index for s in plan.seeds] == [2, 7]
    seed = plan.seeds[1]
    assert seed.boxes == ((1.0, 1.0, 9.0, 8.0),) and seed.propagate
    assert seed.points == ((4.0, 2.0, 1), (5.0, 3.0, 0))
    box3d = plan_slices(Prompts(boxes=(Box((1, 2, 3), (6, 5, 4)),)), (10, 12, 9), lsa, "2",
                        True)
    assert box3d.axis == 2 and [s.index for s in box3d.seeds] == [3, 4]
    assert not any(s.propagate for s in box3d.seeds)


def test_slice_views_and_propagation_box():
    vol = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    img = slice_image(vol, 0, 2)
    assert img.shape == (6, 5) and img[3, 4] == vol[2, 4, 3]  # rows q, columns p
    out = np.zeros_like(vol)
    put_slice(out, 0, 2, img)
    assert np.array_equal(out[2], vol[2])
    mask = np.zeros((128, 64), bool)
    mask[10:20, 30:33] = True  # rows 10-19, columns 30-32
    assert nearest_upsample_box(mask, 1024).tolist() == [475, 75, 532, 164]
    assert nearest_upsample_box(np.zeros((8, 8), bool), 1024) is None


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: p.write_bytes(p.read_bytes()[: 5000]), "not a readable PyTorch checkpoint"),
    (lambda p: torch.save({k: v for k, v in torch.load(p, weights_only=True).items()
                           if "neck.2" not in k}, p), "lacks 1 tensor"),
    (lambda p: torch.save({"a": 1}, p), "not a tensor"),
    (lambda p: torch.save({**torch.load(p, weights_only=True),
                           "image_encoder.patch_embed.proj.weight": torch.zeros(32, 1, 16, 16, 16)},
                          p), "3-D patch embedding"),
])
def test_a_damaged_checkpoint_is_one_line_naming_it(tmp_path, damage, message):
    folder = tmp_path / "m"
    shutil.copytree(MODEL, folder)
    damage(folder / "tiny_medsam.pth")
    with pytest.raises(InputError, match=message) as err:
        load_model(folder)
    assert str(err.value).startswith(str(folder / "tiny_medsam.pth"))
    assert "\n" not in str(err.value)


def test_sam_json_is_checked(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(MODEL, folder)
    cfg = json.loads((folder / "sam.json").read_text())
    for change, message in [({"variant": "sam2_hiera"}, "variant"),
                            ({"checkpoint": "../x.pth"}, "file name in the folder"),
                            ({"pipeline": {"intensity": "pet"}}, "intensity must be"),
                            ({"sha256": "0" * 64}, "sha256 differs")]:
        (folder / "sam.json").write_text(json.dumps({**cfg, **change}))
        with pytest.raises(InputError, match=message):
            load_model(folder)
    (folder / "sam.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="do not take"):
        load_model(folder, roi_subset="liver")
