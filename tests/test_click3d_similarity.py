"""click3d's ``similarity`` guidance channel (models from v1.2 on): a contrast that the
crop-wide normalisation squeezes between air and bone is seen at the scale of the clicked
tissue's noise; model folders of the older five-channel layout still load and run, and a
five-channel state dict widens to six channels without changing what the network computes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.errors import InputError
from medseg.models.base import InferenceSettings
from medseg.models.click3d.config import CONFIG_NAME, WEIGHTS_NAME, read_config, write_model
from medseg.models.click3d.guidance import BASE_CHANNELS, CHANNELS, encode, similarity_map
from medseg.models.click3d.model import load_click3d
from medseg.models.click3d.network import build_network, widen_inputs
from medseg.prompts.types import Point, Prompts
from medseg.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "sample_data" / "models" / "click3d"
PARAMS = {"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 1}


def ct_like_crop(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A 48^3 crop: soft tissue at 40 HU, an 'organ' at 60 HU (the cube), noise 12 HU, air at
    -1000 on one side and bone at 1000 on the other (CT's range around a low-contrast organ)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.full((48, 48, 48), 40.0)
    organ = torch.zeros((48, 48, 48), dtype=torch.bool)
    organ[12:36, 12:36, 8:32] = True
    image[organ] = 60.0
    image[:, :, 40:] = -1000.0
    image[:, 40:, :36] = 1000.0
    return image + 12.0 * torch.randn(image.shape, generator=g), organ


def test_similarity_sees_a_contrast_the_normalised_image_squeezes():
    image, organ = ct_like_crop()
    tissue = torch.zeros_like(organ)
    tissue[2:10, 2:10, 8:32] = True  # soft tissue beside the organ, same slices
    x = encode(image, [(24.0, 24.0, 20.0)], [], None, [], sigma=2.0)
    assert x.shape == (len(CHANNELS), 48, 48, 48)
    normalised_gap = float(x[0][organ].mean() - x[0][tissue].mean())
    similarity_gap = float(x[5][organ].mean() - x[5][tissue].mean())
    assert 0 < normalised_gap < 0.02  # 20 HU of 2000
    assert similarity_gap > max(0.12, 10 * normalised_gap)  # 0.17-0.26 against 0.01
    assert float(x[5][:, :, 42:].max()) == 0.0  # air: far from the click's tissue
    assert float(x[5][:, 42:, :34].max()) == 0.0  # bone, the same
    # a click in the soft tissue turns it round
    y = encode(image, [(5.0, 5.0, 20.0)], [], None, [], sigma=2.0)
    assert float(y[5][tissue].mean() - y[5][organ].mean()) > 0.12


def test_similarity_is_the_same_for_any_intensity_scale():
    image, _ = ct_like_crop(1)
    a = similarity_map(image, [(24.0, 24.0, 20.0)], [])
    b = similarity_map(image * 0.01 + 7.0, [(24.0, 24.0, 20.0)], [])
    assert torch.allclose(a, b, atol=1e-4)


def test_without_a_click_the_box_centre_is_the_reference_and_outside_clicks_count_for_nothing():
    image, organ = ct_like_crop(2)
    box = ((12.0, 12.0, 8.0), (35.0, 35.0, 31.0), None)
    by_box = similarity_map(image, [], [box])
    assert float(by_box[organ].mean()) > float(by_box[~organ].mean()) + 0.12
    flat = ((12.0, 12.0, 20.0), (35.0, 35.0, 20.0), 2)  # a 2-D box on slice 20
    assert float(similarity_map(image, [], [flat])[organ].mean()) > 0.5
    assert float(similarity_map(image, [(60.0, 24.0, 24.0)], []).abs().max()) == 0.0
    assert float(similarity_map(image, [], []).abs().max()) == 0.0
    five = encode(image, [(24.0, 24.0, 20.0)], [], None, [], 2.0, channels=BASE_CHANNELS)
    assert five.shape[0] == 5


def test_a_widened_state_dict_computes_what_the_old_network_did():
    torch.manual_seed(0)
    old = build_network("monai_unet", PARAMS, len(BASE_CHANNELS)).eval()
    new = build_network("monai_unet", PARAMS, len(CHANNELS)).eval()
    new.load_state_dict(widen_inputs(old.state_dict(), new))
    x = torch.randn(1, len(CHANNELS), 16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(old(x[:, :5]), new(x), atol=1e-6)
    # and the new channel's weights are there to be trained
    assert any(v.shape[1] == len(CHANNELS) for v in new.state_dict().values() if v.dim() == 5)


def _tiny_folder(folder: Path, channels) -> Path:
    torch.manual_seed(1)
    net = build_network("monai_unet", PARAMS, len(channels))
    raw = json.loads((MODEL / CONFIG_NAME).read_text())
    raw["architecture"]["params"] = PARAMS
    raw["guidance"]["channels"] = list(channels)
    raw["crop"]["size"] = 16
    return write_model(folder, raw, net.state_dict())


@pytest.mark.parametrize("channels", [BASE_CHANNELS, CHANNELS])
def test_both_channel_layouts_load_and_run(tmp_path, channels):
    folder = _tiny_folder(tmp_path / "m", channels)
    assert read_config(folder).channels == tuple(channels)
    model = load_click3d(folder)
    assert model.info.details["guidance"] == list(channels)
    image = np.zeros((1, 20, 20, 20), dtype=np.float32)
    image[0, 5:15, 5:15, 5:15] = 100.0
    volume = Volume.from_spatial(image[0], np.eye(4))
    settings = InferenceSettings(prompts=Prompts(points=(Point((10.0, 10.0, 10.0), True),)))
    prepared = model.prepare(volume, settings)
    assert prepared.x.shape[0] == len(channels)
    out = model.restore(prepared, model.predict(prepared, settings), settings)
    assert out.channels.shape == (20, 20, 20)


def test_an_unknown_channel_layout_is_refused_naming_the_file(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(MODEL, folder)
    raw = json.loads((folder / CONFIG_NAME).read_text())
    raw["guidance"]["channels"] = [*CHANNELS, "scribble"]
    (folder / CONFIG_NAME).write_text(json.dumps(raw))
    with pytest.raises(InputError) as err:
        load_click3d(folder)
    assert str(err.value).startswith(str(folder / CONFIG_NAME))
    assert "guidance.channels" in str(err.value) and "\n" not in str(err.value)
    assert (folder / WEIGHTS_NAME).is_file()


def test_similarity_clicks_limits_the_clicks_read_and_is_validated(tmp_path):
    image, _ = ct_like_crop(3)
    organ_click, tissue_click, outside = (24.0, 24.0, 20.0), (5.0, 5.0, 20.0), (70.0, 5.0, 5.0)
    both = similarity_map(image, [organ_click, tissue_click], [])
    first = similarity_map(image, [organ_click, tissue_click], [], clicks=1)
    assert torch.equal(first, similarity_map(image, [organ_click], []))
    assert torch.equal(both, torch.maximum(first, similarity_map(image, [tissue_click], [])))
    # a click outside the crop is not the first one inside it
    assert torch.equal(similarity_map(image, [outside, organ_click], [], clicks=1), first)
    folder = _tiny_folder(tmp_path / "m", CHANNELS)
    raw = json.loads((folder / CONFIG_NAME).read_text())
    raw["guidance"]["similarity_clicks"] = 1
    (folder / CONFIG_NAME).write_text(json.dumps(raw))
    assert load_click3d(folder).similarity_clicks == 1
    raw["guidance"]["similarity_clicks"] = 0
    (folder / CONFIG_NAME).write_text(json.dumps(raw))
    with pytest.raises(InputError, match="similarity_clicks"):
        load_click3d(folder)
