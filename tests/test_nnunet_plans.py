"""nnU-Net v2 plans reading, network allow-lists and nnU-Net's resampling/tiling rules.

No fixtures: plans are written in the test. The end-to-end equivalence with nnU-Net's own
predictor is in ``test_nnunet_equivalence.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.errors import InputError
from medseg.models.nnunet.network import build_network, load_weights
from medseg.models.nnunet.plans import ResamplingSpec, read_dataset, read_plans
from medseg.models.nnunet.resampling import (
    _zoom,
    new_shape,
    resample_channel,
    resample_image,
    separate_axis,
)
from medseg.models.nnunet.sliding_window import (
    gaussian_importance,
    mirror_combinations,
    padding,
    tile_starts,
)

pytest.importorskip("dynamic_network_architectures")

KERNELS = [[1, 3, 3], [3, 3, 3], [3, 3, 3]]
STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2]]


def _current_layout(features=(4, 8, 16)) -> dict:
    return {
        "patch_size": [8, 16, 16], "spacing": [4.0, 1.0, 1.0],
        "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 3, "features_per_stage": list(features),
                "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": KERNELS,
                "strides": STRIDES, "n_conv_per_stage": [2, 2, 2],
                "n_conv_per_stage_decoder": [2, 2], "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
    }


def _old_layout() -> dict:
    """The layout of TotalSegmentator's plans (UNet_class_name and friends)."""
    return {
        "patch_size": [8, 16, 16], "spacing": [4.0, 1.0, 1.0],
        "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
        "UNet_class_name": "PlainConvUNet", "UNet_base_num_features": 4,
        "unet_max_num_features": 16, "n_conv_per_stage_encoder": [2, 2, 2],
        "n_conv_per_stage_decoder": [2, 2], "num_pool_per_axis": [1, 2, 2],
        "pool_op_kernel_sizes": STRIDES, "conv_kernel_sizes": KERNELS,
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0,
                                      "force_separate_z": None},
    }


def _write_plans(tmp_path: Path, configurations: dict, **extra) -> Path:
    plans = {"dataset_name": "Dataset900_Test", "plans_name": "nnUNetPlans",
             "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
             "configurations": configurations,
             "foreground_intensity_properties_per_channel": {"0": {
                 "max": 900.0, "mean": 60.0, "median": 55.0, "min": -100.0,
                 "percentile_00_5": -80.0, "percentile_99_5": 700.0, "std": 90.0}}}
    plans.update(extra)
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(plans))
    return path


def test_old_plans_layout_builds_the_same_network_as_the_current_one(tmp_path):
    plans = read_plans(_write_plans(tmp_path, {"old": _old_layout(),
                                               "new": _current_layout()}))
    old, new = plans.configuration("old"), plans.configuration("new")
    assert old.plans_layout == "old" and new.plans_layout == "current"
    assert old.architecture.kwargs["features_per_stage"] == [4, 8, 16]
    net_old = build_network(old.architecture, plans.path, 1, 3)
    net_new = build_network(new.architecture, plans.path, 1, 3)
    shapes_old = {k: tuple(v.shape) for k, v in net_old.state_dict().items()}
    shapes_new = {k: tuple(v.shape) for k, v in net_new.state_dict().items()}
    assert shapes_old == shapes_new
    load_weights(net_old, net_new.state_dict(), tmp_path / "w.pth")
    x = torch.randn(2, 1, 8, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net_old.eval()(x), net_new.eval()(x), atol=1e-5)


def test_configuration_inheritance_and_cycles(tmp_path):
    child = {"inherits_from": "base", "patch_size": [8, 32, 32]}
    plans = read_plans(_write_plans(tmp_path, {"base": _current_layout(), "child": child,
                                               "a": {"inherits_from": "b"},
                                               "b": {"inherits_from": "a"}}))
    config = plans.configuration("child")
    assert config.patch_size == (8, 32, 32)
    assert config.spacing == (4.0, 1.0, 1.0)
    with pytest.raises(InputError, match="inherit in a circle"):
        plans.configuration("a")
    with pytest.raises(InputError, match="has no configuration 'nope'"):
        plans.configuration("nope")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda a: a.update(network_class_name="mypackage.evil.Net"), "is not one medseg builds"),
    (lambda a: a["arch_kwargs"].update(nonlin="os.system"), "nonlin 'os.system' is not allowed"),
    (lambda a: a["arch_kwargs"].update(conv_op="torch.nn.LeakyReLU"), "conv_op"),
    (lambda a: a["_kw_requires_import"].append("n_stages"), "only conv_op"),
    (lambda a: a["arch_kwargs"].update(n_stages=5), "cannot be built"),
])
def test_architecture_allow_lists(tmp_path, mutate, message):
    config = _current_layout()
    mutate(config["architecture"])
    path = _write_plans(tmp_path, {"3d_fullres": config})
    plans = read_plans(path)
    with pytest.raises(InputError, match=message) as err:
        build_network(plans.configuration("3d_fullres").architecture, plans.path, 1, 3)
    assert str(err.value).startswith(str(path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"configurations": {}}', "no 'configurations'"),
    ('{"configurations": {"3d_fullres": {}}, "transpose_forward": [0, 0, 1], '
     '"transpose_backward": [0, 1, 2]}', "transpose_forward must be a permutation"),
])
def test_invalid_plans_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "plans.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as err:
        read_plans(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


@pytest.mark.parametrize(("labels", "extra", "message"), [
    ({"background": 0, "whole": [1, 2, 3], "core": [2, 3]}, {"regions_class_order": [1, 2]},
     "region-based model"),
    ({"background": 0, "a": 1, "b": 3}, {}, "without gaps"),
    ({"a": 1, "b": 2}, {}, "background"),
])
def test_dataset_labels(tmp_path, labels, extra, message):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": labels, **extra}))
    with pytest.raises(InputError, match=message):
        read_dataset(path)


def test_dataset_ignore_label_is_not_a_class(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"channel_names": {"0": "T1", "1": "T2"},
                                "labels": {"background": 0, "lesion": 1, "ignore": 2}}))
    info = read_dataset(path)
    assert info.labels == {"background": 0, "lesion": 1}
    assert info.channel_names == ("T1", "T2")


def test_new_shape_and_separate_axis_follow_nnunet():
    assert new_shape((100, 50, 40), (2.5, 0.8, 0.8), (5.0, 1.6, 1.6)) == (50, 25, 20)
    spec = ResamplingSpec("resample_data_or_seg_to_shape")
    assert separate_axis(spec, (3.0, 0.8, 0.8), (1.0, 1.0, 1.0)) == 0   # current anisotropic
    assert separate_axis(spec, (1.0, 1.0, 1.0), (1.0, 4.0, 1.0)) == 1   # target anisotropic
    assert separate_axis(spec, (1.0, 1.0, 1.2), (1.0, 1.0, 1.0)) is None
    assert separate_axis(spec, (0.24, 1.25, 1.25), (1.0, 1.0, 1.0)) is None  # two low-res axes
    forced = ResamplingSpec("resample_data_or_seg_to_shape", force_separate_z=False)
    assert separate_axis(forced, (3.0, 0.8, 0.8), (1.0, 1.0, 1.0)) is None


@pytest.mark.parametrize("shape", [(7, 31, 29), (5, 9, 12)])
def test_linear_probability_path_equals_scipy_zoom(shape):
    """``resample_channel`` runs order-1 resampling through torch; it must sample where
    ``ndimage.zoom(order=1, mode='nearest', grid_mode=True)`` (nnU-Net's skimage resize) does,
    with the low-res axis taken by order-0 ``map_coordinates``."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 11, 13)).astype(np.float32)
    spec = ResamplingSpec("resample_data_or_seg_to_shape", order=1, order_z=0)
    # isotropic: one 3D zoom
    ours = resample_channel(torch.from_numpy(x), shape, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), spec)
    ref = _zoom(x.astype(np.float64), shape, 1)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
    # anisotropic: slice-wise in plane, nearest along axis 0
    ours = resample_channel(torch.from_numpy(x), shape, (4.0, 1.0, 1.0), (2.0, 1.0, 1.0), spec)
    inplane = np.stack([_zoom(s.astype(np.float64), shape[1:], 1) for s in x])
    coords = (x.shape[0] / shape[0]) * (np.arange(shape[0]) + 0.5) - 0.5
    picks = ndimage.map_coordinates(np.arange(x.shape[0], dtype=float), coords[None], order=0,
                                    mode="nearest").astype(int)
    np.testing.assert_allclose(ours.numpy(), inplane[picks], atol=1e-5)


def test_image_resampling_clips_to_the_input_range_like_skimage():
    x = np.zeros((1, 4, 12, 12), dtype=np.float32)
    x[0, :, 4:8, 4:8] = 100.0  # a step: cubic interpolation overshoots before clipping
    spec = ResamplingSpec("resample_data_or_seg_to_shape", order=3, order_z=0)
    out = resample_image(x, (4, 30, 30), (4.0, 1.0, 1.0), (4.0, 0.4, 0.4), spec)
    assert out.shape == (1, 4, 30, 30) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 100.0
    raw = ndimage.zoom(x[0, 0].astype(np.float64), 2.5, order=3, mode="nearest", grid_mode=True)
    assert raw.min() < 0.0  # the overshoot exists and is clipped away
    np.testing.assert_allclose(out[0, 0], np.clip(raw, 0, 100), atol=1e-4)


def test_tiles_gaussian_padding_and_mirror_combinations():
    # the example in nnU-Net's compute_steps_for_sliding_window
    assert tile_starts((110,), (64,), 0.5) == [[0, 23, 46]]
    assert tile_starts((64, 200), (64, 64), 0.5) == [[0], [0, 27, 54, 82, 109, 136]]
    g = gaussian_importance((9, 16, 16))
    assert g.dtype == torch.float32 and float(g.max()) == pytest.approx(10.0)
    assert float(g[4, 8, 8]) == pytest.approx(10.0) and float(g.min()) > 0
    assert padding((3, 34, 55), (3, 96, 64)) == [(0, 0), (31, 31), (4, 5)]
    assert mirror_combinations((0, 1, 2)) == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2),
                                              (0, 1, 2)]
    assert mirror_combinations(None) == []


class _PointwiseNet(torch.nn.Module):
    """A per-voxel network: tiling, padding and weighting must give back its plain output."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        conv = torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d
        torch.manual_seed(0)
        self.conv = conv(2, 4, 1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize(("shape", "patch"), [((2, 30, 41, 17), (8, 16, 16)),   # 3D, padded
                                              ((2, 5, 40, 33), (16, 16))])      # 2D slices
def test_sliding_window_reassembles_a_pointwise_network(shape, patch):
    from medseg.models.nnunet.sliding_window import mirrored_forward, sliding_window_logits

    image = torch.randn(shape)
    net = _PointwiseNet(len(patch)).eval()
    with torch.no_grad():
        if len(patch) == 3:
            direct = net(image[None])[0]
        else:  # slice by slice along the first axis
            direct = torch.stack([net(image[:, d][None])[0] for d in range(shape[1])], dim=1)
        forwards = [mirrored_forward(net, (0, 1, 2)[: len(patch)], torch.device("cpu"), 3)]
        tiled = sliding_window_logits(image, patch, 0.5, forwards, 4, batch_size=3)
    assert tiled.shape == direct.shape
    torch.testing.assert_close(tiled, direct, atol=1e-5, rtol=1e-5)


def test_reorienting_readers_see_ras_and_the_others_the_file_order(tmp_path):
    """SimpleITKIO/NibabelIO: nnU-Net's array is the file's voxel array with the axes reversed
    (then transpose_forward); ...WithReorient readers turn the image to RAS first."""
    from medseg.models.nnunet.preprocessing import prepare_volume
    from medseg.volume import Volume

    rng = np.random.default_rng(3)
    data = rng.normal(size=(1, 6, 7, 8)).astype(np.float32) + 5
    lps = Volume(data, np.diag([-1.0, -2.0, 3.0, 1.0]))
    ras = Volume(data[:, ::-1, ::-1, :].copy(), np.diag([1.0, 2.0, 3.0, 1.0]))
    config = _current_layout()
    config["spacing"] = [3.0, 2.0, 1.0]  # nnU-Net order: no resampling for these volumes
    config["normalization_schemes"] = ["NoNormalization"]
    for reader, same in (("SimpleITKIO", False), ("NibabelIOWithReorient", True)):
        plans = read_plans(_write_plans(tmp_path, {"3d_fullres": config},
                                        image_reader_writer=reader))
        cfg = plans.configuration("3d_fullres")
        a = prepare_volume(lps, plans, cfg).image.numpy()
        b = prepare_volume(ras, plans, cfg).image.numpy()
        assert a.shape == b.shape == (1, 8, 7, 6)
        # reversed axes of the file's array (SimpleITKIO), or of its RAS version
        np.testing.assert_array_equal(b[0], ras.array[0].transpose(2, 1, 0))
        if not same:
            np.testing.assert_array_equal(a[0], data[0].transpose(2, 1, 0))
        assert np.array_equal(a, b) == same
