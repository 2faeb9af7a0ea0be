"""click3d's focus crop (``crop.focus_margin``): the newest click that disagrees with the mask
being refined is looked at again on a finer crop centred on it, whose answer decides the ball
that click may change (``crop.local_factor``); nothing else changes. And the main crop always
holds the newest click, even on an object longer than the coarsest crop."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg.engine.segmenter import Segmenter
from medseg.errors import InputError
from medseg.models import load_model
from medseg.models.base import InferenceSettings
from medseg.models.click3d.config import CONFIG_NAME, CropPolicy, read_config
from medseg.models.click3d.crop import Crop
from medseg.models.click3d.focus import focus_crop
from medseg.models.click3d.local import ball_mask, corrections
from medseg.prompts.simulate import next_click
from medseg.prompts.types import Point, Prompts
from medseg.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "sample_data" / "models" / "click3d"
SHAPE = (60, 60, 30)
SPACING = (1.0, 1.0, 2.0)
POLICY = CropPolicy(size=48, min_spacing_mm=0.7, local_factor=2.0, local_min_mm=10.0,
                    focus_margin=1.5, focus_ratio=1.3)


def sphere(centre_mm, radius_mm) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    return (((idx * np.asarray(SPACING)) - np.asarray(centre_mm)) ** 2).sum(-1) <= radius_mm ** 2


def main_crop(spacing_mm: float) -> Crop:
    return Crop(tuple((n - 1) / 2 for n in SHAPE), spacing_mm, 48, SPACING)


def test_the_focus_crop_is_centred_on_the_newest_correction_and_sized_by_its_ball():
    prior = sphere((30.0, 30.0, 30.0), 15.0)
    first = Point((30.0, 30.0, 15.0), True)  # agrees with the mask
    early = Point((30.0, 17.0, 15.0), False)  # inside, near the edge: a correction
    newest = Point((30.0, 30.0, 15.0), False)  # the centre: 15 mm from the outside
    focus = focus_crop(prior, [first, early, newest], main_crop(5.0), POLICY)
    assert focus is not None
    assert focus.crop.centre == (30.0, 30.0, 15.0)
    (_, r_early), (_, r_newest) = corrections(prior, [first, early, newest], SPACING,
                                              [(0, n) for n in SHAPE], 2.0, 10.0)
    assert focus.radius_mm == r_newest and r_newest > r_early
    assert 30.0 <= r_newest <= 33.0  # twice the distance to the outside
    assert focus.crop.spacing == pytest.approx(2 * r_newest * 1.5 / 48)
    assert focus.crop.size == 48 and focus.crop.input_spacing == SPACING


def test_the_ball_is_given_on_the_window_the_focus_crop_covers():
    prior = sphere((30.0, 30.0, 30.0), 15.0)
    focus = focus_crop(prior, [Point((30.0, 47.0, 15.0), True)], main_crop(5.0), POLICY)
    assert focus is not None and focus.crop.spacing == pytest.approx(POLICY.min_spacing_mm)
    window = focus.window(SHAPE)
    whole = ball_mask(SHAPE, focus.centre, focus.radius_mm, SPACING)
    assert np.array_equal(focus.ball(SHAPE), whole[window])
    assert whole.sum() == focus.ball(SHAPE).sum()  # the ball lies inside the focus crop


def test_no_focus_crop_without_a_correction_or_where_it_would_not_look_closer():
    prior = sphere((30.0, 30.0, 30.0), 15.0)
    correction = Point((30.0, 30.0, 15.0), False)
    assert focus_crop(prior, [Point((30.0, 30.0, 15.0), True)], main_crop(5.0), POLICY) is None
    assert focus_crop(prior, [correction], main_crop(5.0),
                      dataclasses.replace(POLICY, focus_margin=0.0)) is None
    assert focus_crop(prior, [correction], main_crop(5.0),
                      dataclasses.replace(POLICY, local_factor=0.0)) is None
    # the focus crop would be at 2 * ~31 * 1.5 / 48 = ~1.9 mm: not 1.3 times finer than 2.2 mm
    assert focus_crop(prior, [correction], main_crop(2.2), POLICY) is None
    assert focus_crop(prior, [correction], main_crop(2.6), POLICY) is not None


@pytest.fixture(scope="module")
def capped():
    """A large bright ellipsoid at 1.5 mm (the main crop sees it at ~3.1 mm) and a mask to
    refine that wrongly holds a 6 mm thick cap of the tissue around one side of it."""
    sp = 1.5
    shape = (100, 100, 80)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1) * sp
    centre = np.array(shape) * sp / 2
    body = (((idx - centre) / [55.0, 45.0, 40.0]) ** 2).sum(-1) <= 1
    image = 40 + 10 * np.random.default_rng(3).normal(size=shape)
    image[body] += 120
    volume = Volume.from_spatial(image.astype(np.float32), np.diag([sp, sp, sp, 1.0]))
    cap = ndimage.binary_dilation(body, iterations=4) & ~body & (idx[..., 1] > centre[1] + 25)
    return volume, body, body | cap


def test_the_focus_crop_corrects_a_thin_error_the_main_crop_cannot_draw(capped):
    """A negative click in the false cap: with the focus crop the ball around it holds far fewer
    wrong voxels than with the main crop alone (which cuts into the object as it removes the
    cap), and the mask outside that ball is the same either way."""
    volume, body, prior = capped
    click = next_click(prior, body, volume.spacing)
    assert click is not None and not click.positive
    prompts = Prompts((Point(tuple(np.argwhere(body).mean(0))), click), mask=prior)
    model = load_model(MODEL)
    assert model.policy.focus_margin > 0
    masks = {}
    for margin in (0.0, model.policy.focus_margin):
        model.policy = dataclasses.replace(model.policy, focus_margin=margin)
        masks[margin] = Segmenter(model)(volume, "capped", prompts=prompts).labels.data > 0
    plain, focused = masks.values()
    prepared = model.prepare(volume, InferenceSettings(prompts=prompts))
    assert prepared.focus is not None and prepared.crop.spacing > 3.0
    found = prepared.focus[0]
    assert found.crop.spacing < 2.0 and np.allclose(found.centre, click.position)
    ball = ball_mask(body.shape, found.centre, found.radius_mm, volume.spacing)
    wrong = {k: int(((m ^ body) & ball).sum()) for k, m in (("plain", plain),
                                                             ("focused", focused))}
    assert int((prior ^ body)[ball].sum()) > 2000  # the cap the click asks to remove
    assert wrong["focused"] < 0.8 * wrong["plain"], wrong
    assert int((body & ~focused & ball).sum()) < 0.2 * int((body & ~plain & ball).sum())
    assert np.array_equal(plain[~ball], focused[~ball])


def test_the_shipped_model_uses_the_focus_crop_and_a_bad_value_is_refused(tmp_path):
    config = read_config(MODEL)
    assert config.crop.focus_margin > 0 and config.crop.focus_ratio >= 1
    for key, value in (("focus_margin", -1), ("focus_ratio", 0.5)):
        folder = tmp_path / key
        shutil.copytree(MODEL, folder)
        raw = json.loads((folder / CONFIG_NAME).read_text())
        raw["crop"][key] = value
        (folder / CONFIG_NAME).write_text(json.dumps(raw))
        with pytest.raises(InputError, match=r"click3d\.json.*'crop"):
            read_config(folder)


def test_a_click_beyond_the_coarsest_crop_is_still_seen():
    """An object longer than the coarsest crop holds (a 480 mm tube; the crop holds 240 mm):
    a positive click near its far end, well beyond the mask being refined, is answered (the
    crop is moved to hold it) instead of being lost outside a crop centred on the middle."""
    shape = (40, 40, 120)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1) * 4.0
    tube = ((idx[..., 0] - 80.0) ** 2 + (idx[..., 1] - 80.0) ** 2) <= 14.0 ** 2
    image = 40 + 10 * np.random.default_rng(5).normal(size=shape)
    image[tube] += 150
    volume = Volume.from_spatial(image.astype(np.float32), np.diag([4.0, 4.0, 4.0, 1.0]))
    prior = tube.copy()
    prior[..., 50:] = False
    far = Point((20.0, 20.0, 100.0), True)
    model = load_model(MODEL)
    prompts = Prompts((Point((20.0, 20.0, 25.0)), far), mask=prior)
    prepared = model.prepare(volume, InferenceSettings(prompts=prompts))
    assert prepared.crop.spacing == pytest.approx(model.policy.max_spacing_mm)
    window = prepared.crop.covered(shape)
    assert window[2][0] + 12 <= 100 < window[2][1] - 12
    mask = Segmenter(model)(volume, "tube", prompts=prompts).labels.data > 0
    assert mask[20, 20, 100]
    added = mask[..., 50:] & tube[..., 50:]
    assert added.sum() > 0.3 * tube[..., 50:].sum()

