"""Inference with the shipped default models: accuracy and exact output geometry."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.cli import main
from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.errors import InputError, MedsegError
from medseg.evaluation.metrics import dice
from medseg.evaluation.pairs import resample_nearest
from medseg.io import read_image, read_label_map
from medseg.io.dicom_write import write_dicom_series
from medseg.models.medseg_bundle.bundle import load_bundle
from medseg.models.medseg_bundle.model import MedsegBundleModel
from medseg.volume import Volume
from tests.brain_datasets import axial_slices
from tests.conftest import oblique_affine

BRAIN_TS = "sample_data/Dataset001_BrainTissue"


@pytest.fixture(scope="module")
def brain():
    return Segmenter(MedsegBundleModel(load_bundle("brain_tissue")), InferenceSettings())


@pytest.fixture(scope="module")
def case():
    return read_image(f"{BRAIN_TS}/imagesTs/brain_100_0000.nii.gz")


def test_shipped_model_reaches_its_recorded_test_dice(brain, case):
    ref = read_label_map(f"{BRAIN_TS}/labelsTs/brain_100.nii.gz").data
    pred = brain(case).labels.data
    recorded = brain.bundle.config["training"]["test_dice_per_case"]["brain_100"]
    for value, name in brain.bundle.label_names.items():
        if value == 0:
            continue
        assert dice(pred == value, ref == value) >= recorded[name] - 0.02, name


def _same_data_new_grid(vol: Volume, perm, flips) -> Volume:
    """The same world image stored with permuted/flipped axes (exact, no interpolation)."""
    arr = vol.data
    aff = vol.affine.copy()
    for ax in flips:
        arr = np.flip(arr, ax)
        shift = np.eye(4)
        shift[ax, ax] = -1
        shift[ax, 3] = vol.spatial_shape[ax] - 1
        aff = aff @ shift
    arr = np.transpose(arr, perm)
    p = np.eye(4)
    p[:3, :3] = np.eye(3)[:, perm]
    return Volume.from_spatial(np.ascontiguousarray(arr), aff @ p)


def _world_dice(a, b, values):
    on_b = resample_nearest(a, b).data
    return {v: dice(on_b == v, b.data == v) for v in values}


def _check_geometry(result, image):
    assert result.labels.spatial_shape == image.spatial_shape
    np.testing.assert_array_equal(result.labels.affine, image.affine)


def test_exact_regridding_gives_identical_masks_in_world_space(brain, case, tmp_path):
    reference = brain(case).labels
    values = [v for v in brain.bundle.label_names if v]
    lps = _same_data_new_grid(case, (0, 1, 2), flips=(0, 1))
    asl = _same_data_new_grid(case, (1, 2, 0), flips=(1,))
    write_dicom_series(Volume(case.array.astype(np.int16), case.affine), tmp_path / "dcm")
    dicom = read_image(tmp_path / "dcm")
    for name, variant in {"LPS": lps, "ASL": asl, "DICOM": dicom}.items():
        result = brain(variant)
        _check_geometry(result, variant)
        for v, d in _world_dice(result.labels, reference, values).items():
            assert d >= 0.98, (name, v, d)


def test_oblique_affine_keeps_mask_on_the_input_grid(brain, case):
    """The same voxels declared in an oblique frame: the mask follows the frame exactly."""
    tilt = np.eye(4)
    tilt[:3, :3] = oblique_affine(angles=(8, -6, 4))[:3, :3] / np.array([0.7, 0.9, 2.5])
    tilt[:3, 3] = (5.0, -7.0, 3.0)
    oblique = Volume(case.array, tilt @ case.affine)  # same voxels, tilted scanner frame
    assert oblique.orientation == case.orientation
    result = brain(oblique)
    _check_geometry(result, oblique)
    np.testing.assert_array_equal(result.labels.data, brain(case).labels.data)


def test_anisotropic_resampled_case_agrees_in_world_space(brain, case):
    """The case genuinely resampled to 1.5 x 1.5 x 3.5 mm: masks compared on a common grid."""
    new_spacing = np.array([1.5, 1.5, 3.5])
    scale = new_spacing / np.array(case.spacing)
    shape = tuple(int(s) for s in np.floor(np.array(case.spatial_shape) / scale))
    data = ndimage.affine_transform(case.data.astype(np.float32), np.diag(scale),
                                    output_shape=shape, order=1)
    aniso = Volume.from_spatial(data, case.affine @ np.diag([*scale, 1.0]))
    result = brain(aniso)
    _check_geometry(result, aniso)
    assert result.labels.spacing == pytest.approx(tuple(new_spacing))
    reference = brain(case).labels
    scores = _world_dice(reference, result.labels, [1, 2])
    # the two large classes agree well after independent resampling of image and mask
    assert np.mean(list(scores.values())) >= 0.85, scores


def test_2d_model_end_to_end(tmp_path):
    """Train a tiny 2D model on axial slices and segment a 2D PNG with it via the CLI."""
    from PIL import Image

    from medseg.training.train import TrainConfig, train

    ds = axial_slices(tmp_path / "Dataset010_Slices", 4)
    bundle = train(ds, tmp_path / "model2d", TrainConfig(
        iterations=6, val_every=6, patch_size=(64, 64), batch_size=2,
        arch_params={"channels": [8, 16, 32], "num_res_units": 1}), progress=False)
    assert bundle.spatial_dims == 2
    png = tmp_path / "slice.png"
    sl = read_image(ds / "imagesTr" / "s0_0000.nii.gz").data
    Image.fromarray((sl / sl.max() * 255).astype(np.uint8).T).save(png)
    assert main(["segment", str(png), "-o", str(tmp_path / "out"), "-m", str(bundle.path),
                 "--quiet"]) == 0
    mask = read_image(tmp_path / "out" / "slice.nii.gz")
    assert mask.spatial_ndim == 2
    assert mask.spatial_shape == read_image(png).spatial_shape
    # a 2D model refuses a 3D volume with a clear error
    with pytest.raises(InputError, match="2D but the image is 3D"):
        Segmenter(MedsegBundleModel(bundle))(read_image(f"{BRAIN_TS}/imagesTs/brain_100_0000.nii.gz"))


def test_batch_reports_failures_and_resumes(tmp_path, capsys):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    out = tmp_path / "out"
    args = ["segment", f"{BRAIN_TS}/imagesTs/brain_100_0000.nii.gz", str(bad), "-o", str(out),
            "-m", "brain_tissue", "--quiet", "--postprocess", "keep_largest:{\"classes\": [1]}"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "brain_100: ok" in captured.out
    assert f"medseg: error: {bad}: " in captured.err  # the promised one-line form
    assert (out / "brain_100.nii.gz").is_file()
    volumes = json.loads((out / "brain_100_volumes.json").read_text())["volumes"]
    assert {r["name"] for r in volumes} == {"white_matter", "grey_matter", "csf"}
    assert all(r["volume_ml"] > 0 for r in volumes)
    assert not list(out.glob("broken*"))
    assert not list(out.glob(".*part*"))
    # a rerun skips the finished case
    assert main(args) == 1
    assert "brain_100: skipped" in capsys.readouterr().out


def test_dicom_input_gives_dicom_seg_in_the_same_world(tmp_path):
    import highdicom as hd

    out = tmp_path / "out"
    assert main(["segment", "sample_data/dicom/ct_phantom_001", "-o", str(out), "-m",
                 "brain_tissue", "--dicom-seg", "--quiet"]) == 0
    mask = read_label_map(out / "ct_phantom_001.nii.gz")
    seg = hd.seg.segread(out / "ct_phantom_001_seg.dcm")
    assert str(seg.PatientName) == ""  # no patient data by default
    vol = seg.get_volume(combine_segments=True, relabel=False)
    idx = np.argwhere(vol.array > 0)[:: 97]
    lps = (vol.affine @ np.c_[idx, np.ones(len(idx))].T)[:3].T
    ras = lps * np.array([-1, -1, 1])
    ijk = np.round((np.linalg.inv(mask.affine) @ np.c_[ras, np.ones(len(ras))].T)[:3].T)
    ijk = ijk.astype(int)
    assert np.all(mask.data[tuple(ijk.T)] > 0)


@pytest.fixture
def bundle_copy(tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(load_bundle("brain_tissue").path, dst,
                    ignore=shutil.ignore_patterns("checkpoint.pt"))
    return dst


def test_corrupt_bundles_are_refused(bundle_copy, case):
    (bundle_copy / "weights.pt").write_bytes((bundle_copy / "weights.pt").read_bytes()[:-100])
    with pytest.raises(InputError, match="checksum"):
        Segmenter(MedsegBundleModel(load_bundle(bundle_copy)))
    (bundle_copy / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupt bundle config"):
        load_bundle(bundle_copy)


def test_pickle_payload_is_not_executed(bundle_copy, tmp_path):
    from medseg.models.medseg_bundle.bundle import sha256_file

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"weight": Evil()}, bundle_copy / "weights.pt")
    cfg = json.loads((bundle_copy / "config.json").read_text())
    cfg["weights"]["sha256"] = sha256_file(bundle_copy / "weights.pt")
    (bundle_copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="cannot be loaded safely"):
        Segmenter(MedsegBundleModel(load_bundle(bundle_copy)))
    assert not marker.exists()


def test_unknown_architecture_and_nan_image(bundle_copy, case):
    cfg = json.loads((bundle_copy / "config.json").read_text())
    cfg["architecture"]["name"] = "no_such_net"
    (bundle_copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="unknown architecture 'no_such_net'"):
        load_bundle(bundle_copy)
    arr = case.array.astype(np.float32)
    arr[0, 3, 3, 3] = np.nan
    with pytest.raises(MedsegError, match="NaN"):
        Segmenter(MedsegBundleModel(load_bundle("brain_tissue")))(Volume(arr, case.affine))


def test_model_channel_mismatch(case):
    two = Volume(np.concatenate([case.array, case.array]).astype(np.float32), case.affine)
    with pytest.raises(InputError, match="expects 1 channel"):
        Segmenter(MedsegBundleModel(load_bundle("brain_tissue")))(two)


def test_torchrun_batch_shards_cases_with_identical_outputs(tmp_path):
    inputs = sorted(str(p) for p in Path(f"{BRAIN_TS}/imagesTs").glob("*.nii.gz"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same thread count: same float reductions
    single = tmp_path / "single"
    one = subprocess.run([sys.executable, "-m", "medseg.cli", "segment", *inputs, "-o",
                          str(single), "-m", "brain_tissue", "--quiet", "--device", "cpu"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr[-2000:]
    sharded = tmp_path / "sharded"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29519", "-m", "medseg.cli", "segment", *inputs, "-o", str(sharded),
           "-m", "brain_tissue", "--quiet", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = [json.loads((sharded / f"summary_rank{r}.json").read_text()) for r in (0, 1)]
    assert sorted(row["case"] for rows in ranks for row in rows) == \
        ["brain_100", "brain_101", "brain_102"]
    assert all(len(rows) >= 1 for rows in ranks)  # both ranks did work
    for name in ("brain_100", "brain_101", "brain_102"):
        a = read_label_map(single / f"{name}.nii.gz")
        b = read_label_map(sharded / f"{name}.nii.gz")
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.affine, b.affine)


def test_probability_maps_match_the_mask(brain, case):
    """With probabilities asked for, the mask is their argmax, on the same grid."""
    with_probs = Segmenter(MedsegBundleModel(brain.bundle),
                           InferenceSettings(probabilities=True))(case)
    probs = with_probs.probabilities
    assert probs.n_channels == len(brain.bundle.labels)
    assert probs.spatial_shape == case.spatial_shape
    np.testing.assert_array_equal(probs.affine, case.affine)
    np.testing.assert_allclose(probs.array.sum(0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(probs.array.argmax(0), with_probs.labels.data)
    np.testing.assert_array_equal(with_probs.labels.data, brain(case).labels.data)
