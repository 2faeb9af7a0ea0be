"""medseg-deeplab's own tests: shapes in 2D and 3D, output strides, and registration."""

import pytest
import torch
from medseg_deeplab import DeepLabV3Plus

TINY = {"channels": (4, 8, 8, 16, 16), "aspp_channels": 8, "low_level_channels": 4,
        "decoder_channels": 8}


@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize(("dims", "shape"), [(2, (40, 56)), (3, (32, 24, 40))])
def test_logits_have_input_size(dims, shape, output_stride):
    net = DeepLabV3Plus(dims, 2, 3, output_stride=output_stride, atrous_rates=(1, 2, 3), **TINY)
    out = net(torch.randn(2, 2, *shape))
    assert out.shape == (2, 3, *shape)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_encoder_reaches_the_output_stride():
    net = DeepLabV3Plus(2, 1, 2, output_stride=8, **TINY)
    h = net.stem(torch.zeros(1, 1, 64, 64))
    for stage in net.stages:
        h = stage(h)
    assert h.shape[2:] == (8, 8)


def test_registered_with_medseg():
    from medseg.plugins import get_plugin_manager
    from medseg.registry import build_registry

    reg = build_registry(get_plugin_manager())
    assert reg.architectures.providers["deeplabv3plus"] == "medseg-deeplab:deeplab"
    net = reg.architectures.get("deeplabv3plus").factory(spatial_dims=3, in_channels=1,
                                                         out_channels=2, **TINY)
    assert net(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)
