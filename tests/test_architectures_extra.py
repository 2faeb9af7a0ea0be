"""The extra built-in architectures (SwinUNETR, UNETR, Attention U-Net, SegFormer) each train
for two iterations and segment a sample volume (or slice) through sliding-window inference."""

import numpy as np
import pytest
import torch

from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.errors import PluginError
from medseg.io import read_image
from medseg.models.medseg_bundle.model import MedsegBundleModel
from medseg.training.train import TrainConfig, train
from tests.brain_datasets import axial_slices, cropped_brains


@pytest.fixture(scope="module")
def brain3d(tmp_path_factory):
    """Two sample brains cropped to 40^3 voxels (one trains, one validates)."""
    return cropped_brains(tmp_path_factory.mktemp("ds3d") / "Dataset011_Tiny", 2)


@pytest.fixture(scope="module")
def brain2d(tmp_path_factory):
    """Axial middle slices of three sample brains as a 2D dataset."""
    return axial_slices(tmp_path_factory.mktemp("ds2d") / "Dataset012_Slices", 3)


CASES = [
    pytest.param("swinunetr", {"feature_size": 12, "depths": [1, 1, 1, 1],
                               "num_heads": [1, 2, 2, 4], "window_size": 4}, 2, id="swinunetr-2d"),
    pytest.param("unetr", {"img_size": [32, 32, 32], "feature_size": 8, "hidden_size": 48,
                           "mlp_dim": 96, "num_heads": 4}, 3, id="unetr"),
    pytest.param("attention_unet", {"channels": [8, 16, 32], "strides": [2, 2]}, 3,
                 id="attention_unet"),
    pytest.param("segformer", {"hidden_sizes": [8, 16, 24, 32], "depths": [1, 1, 1, 1],
                               "num_attention_heads": [1, 1, 2, 2],
                               "decoder_hidden_size": 32}, 2, id="segformer"),
]


@pytest.mark.parametrize(("arch", "params", "dims"), CASES)
def test_extra_architecture_trains_and_segments(arch, params, dims, brain3d, brain2d, tmp_path,
                                                registry):
    assert registry.architectures.providers[arch] == "medseg:architectures_extra"
    dataset = brain3d if dims == 3 else brain2d
    patch = (32, 32, 32) if dims == 3 else (64, 64)
    bundle = train(dataset, tmp_path / arch, TrainConfig(
        architecture=arch, arch_params=params, iterations=2, val_every=2, patch_size=patch,
        batch_size=1, samples_per_volume=1, augment=False), registry=registry, progress=False)
    assert bundle.config["architecture"]["name"] == arch
    assert bundle.config["training"]["iterations_done"] == 2
    image = read_image(next((dataset / "imagesTr").glob("*_0000.nii.gz")))
    result = Segmenter(MedsegBundleModel(bundle, registry), InferenceSettings(overlap=0.0),
                       registry)(image)
    assert result.labels.spatial_shape == image.spatial_shape
    np.testing.assert_allclose(result.labels.affine, image.affine)
    assert set(np.unique(result.labels.data)) <= {0, 1, 2, 3}


def test_segformer_upsamples_to_input_and_loads_local_pretrained(tmp_path, registry):
    from transformers import SegformerForSemanticSegmentation

    factory = registry.architectures.get("segformer").factory
    small = {"hidden_sizes": [8, 16, 24, 32], "depths": [1, 1, 1, 1],
             "num_attention_heads": [1, 1, 2, 2], "decoder_hidden_size": 16}
    net = factory(spatial_dims=2, in_channels=1, out_channels=3, **small)
    assert net(torch.zeros(2, 1, 64, 96)).shape == (2, 3, 64, 96)
    net.model.save_pretrained(tmp_path / "pretrained")
    again = factory(spatial_dims=2, in_channels=1, out_channels=3,
                    pretrained_path=str(tmp_path / "pretrained"))
    assert isinstance(again.model, SegformerForSemanticSegmentation)
    for key, value in net.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)
    with pytest.raises(PluginError, match="2D only"):
        factory(spatial_dims=3, in_channels=1, out_channels=3)
    with pytest.raises(PluginError, match="not a folder"):
        factory(spatial_dims=2, in_channels=1, out_channels=3,
                pretrained_path=str(tmp_path / "missing"))


def test_unetr_needs_img_size(registry):
    with pytest.raises(PluginError, match="img_size"):
        registry.architectures.get("unetr").factory(spatial_dims=3, in_channels=1,
                                                    out_channels=2)


def test_swinunetr_3d_forward(registry):
    """3D SwinUNETR keeps the input size (trained above in 2D: 3D needs 64^3 patches)."""
    net = registry.architectures.get("swinunetr").factory(
        spatial_dims=3, in_channels=1, out_channels=3, feature_size=12, depths=[1, 1, 1, 1],
        num_heads=[1, 2, 2, 4], window_size=4).eval()
    with torch.inference_mode():
        assert net(torch.zeros(1, 1, 64, 64, 64)).shape == (1, 3, 64, 64, 64)
