"""Built-in architectures, losses and postprocessors behave as documented."""

import numpy as np
import pytest
import torch

from medseg_plugins.architectures import dynunet_plan


@pytest.mark.parametrize("name", ["unet", "dynunet", "segresnet"])
@pytest.mark.parametrize("dims", [2, 3])
def test_architectures_map_input_to_class_logits(registry, name, dims):
    spec = registry.architectures.get(name)
    params = dict(spec.defaults)
    if name == "dynunet":
        params.update(patch_size=[32] * dims, max_levels=3)
    if name == "unet":
        params.update(channels=[4, 8, 16], num_res_units=1)
    if name == "segresnet":
        params.update(init_filters=8)
    net = spec.factory(spatial_dims=dims, in_channels=1, out_channels=3, **params)
    x = torch.randn(1, 1, *[32] * dims)
    with torch.no_grad():
        assert net.eval()(x).shape == (1, 3, *[32] * dims)


def test_dynunet_plan_follows_anisotropy():
    kernels, strides = dynunet_plan([128, 128, 32], spacing=[0.8, 0.8, 4.0], max_levels=5)
    assert strides[0] == [1, 1, 1]
    # the coarse z axis is neither pooled nor convolved with 3 until x/y catch up
    assert strides[1] == [2, 2, 1] and kernels[0] == [3, 3, 1]
    assert len(kernels) == len(strides)


@pytest.mark.parametrize("name", ["ce", "dice", "iou", "focal", "dice_ce", "dice_focal"])
def test_losses_prefer_correct_predictions(registry, name):
    target = torch.zeros(2, 1, 8, 8, 8, dtype=torch.long)
    target[:, :, 2:5, 2:5, 2:5] = 1
    target[:, :, 6:8, 6:8, 6:8] = 2
    onehot = torch.nn.functional.one_hot(target[:, 0], 3).permute(0, 4, 1, 2, 3).float()
    good, bad = onehot * 8 - 4, (1 - onehot) * 8 - 4
    loss = registry.losses.get(name).factory(num_classes=3)
    assert float(loss(good, target)) < float(loss(bad, target))
    logits = bad.clone().requires_grad_(True)
    loss(logits, target).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_keep_largest_per_class(registry):
    fn = registry.postprocessors.get("keep_largest").fn
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[0:4, 0:4, 0:4] = 1  # 64 voxels
    labels[7:9, 7:9, 7:9] = 1  # 8 voxels, dropped
    labels[5, 5, 5] = 2  # single voxel, but the only component of class 2
    out = fn(labels, spacing=(1, 1, 1), classes=None)
    assert (out == 1).sum() == 64 and (out == 2).sum() == 1
    only_2 = fn(labels, spacing=(1, 1, 1), classes=[2])
    np.testing.assert_array_equal(only_2, labels)
    assert labels[8, 8, 8] == 1  # input untouched


def test_keep_largest_foreground_treats_the_classes_as_one_object(registry):
    fn = registry.postprocessors.get("keep_largest_foreground").fn
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[1:7, 1:7, 1:7] = 2  # the object: class 2 with a core of class 1 and a class 3 bit
    labels[3:5, 3:5, 3:5] = 1
    labels[6, 6, 6] = 3
    labels[9:11, 9:11, 9:11] = 1  # an island of class 1 in the air: 8 voxels
    labels[0, 11, 0] = 3  # a single-voxel island of class 3
    out = fn(labels, spacing=(1, 1, 1), classes=None)
    assert out[9:11, 9:11, 9:11].max() == 0 and out[0, 11, 0] == 0
    # inside the object every class stays, even a class whose own largest piece is elsewhere
    np.testing.assert_array_equal(out[:8, :8, :8], labels[:8, :8, :8])
    assert (out == 1).sum() == 8 and (out == 3).sum() == 1
    # restricted to class 3 only: the two single voxels tie, one of them is kept
    only_3 = fn(labels, spacing=(1, 1, 1), classes=[3])
    assert (only_3 == 3).sum() == 1 and (only_3 == 1).sum() == 16
    assert labels[0, 11, 0] == 3  # input untouched


def test_fill_holes_fills_enclosed_background_only(registry):
    fn = registry.postprocessors.get("fill_holes").fn
    labels = np.zeros((9, 9, 9), np.uint8)
    labels[1:8, 1:8, 1:8] = 1
    labels[4, 4, 4] = 0  # hole
    labels[3, 3, 3] = 2  # another class inside stays
    out = fn(labels, spacing=(1, 1, 1), classes=None)
    assert out[4, 4, 4] == 1 and out[3, 3, 3] == 2 and out[0, 0, 0] == 0


def test_remove_small_uses_spacing(registry):
    fn = registry.postprocessors.get("remove_small").fn
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[0:2, 0:2, 0:2] = 1  # 8 voxels
    labels[10:15, 10:15, 10:15] = 1  # 125 voxels
    # 8 voxels of 2 mm^3 = 16 mm^3 < 100 mm^3: removed; 125 * 2 = 250 mm^3 stays
    out = fn(labels, spacing=(1, 1, 2), classes=None, min_volume_mm3=100, min_voxels=1)
    assert (out == 1).sum() == 125
    kept = fn(labels, spacing=(1, 1, 2), classes=None, min_volume_mm3=10, min_voxels=1)
    assert (kept == 1).sum() == 133
