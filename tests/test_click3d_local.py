"""click3d's local edits (``crop.local_factor``): a click that disagrees with the mask it
refines changes that mask only within a ball around itself whose radius is the factor times
its distance (mm) to the mask's other side; clicks that agree ask for no change."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.engine.segmenter import Segmenter
from medseg.errors import InputError
from medseg.models import load_model
from medseg.models.click3d.config import CONFIG_NAME, read_config
from medseg.models.click3d.local import edit_region
from medseg.prompts.simulate import next_click
from medseg.prompts.types import Point, Prompts
from medseg.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "sample_data" / "models" / "click3d"
SHAPE = (40, 40, 20)
SPACING = (1.0, 1.0, 2.5)
WHOLE = [(0, n) for n in SHAPE]


def mm_grid() -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    return idx * np.asarray(SPACING)


def ball(centre_mm, radius_mm) -> np.ndarray:
    return ((mm_grid() - np.asarray(centre_mm)) ** 2).sum(-1) <= radius_mm ** 2


def test_a_positive_click_outside_the_mask_may_change_a_ball_of_factor_times_its_distance():
    prior = ball((20.0, 20.0, 25.0), 6.0)
    click = Point((20.0, 30.0, 10.0), True)  # 4 mm beyond the mask's edge along axis 1
    region = edit_region(prior, [click], SPACING, WHOLE, factor=3.0, min_mm=0.0)
    reach = np.sqrt(((mm_grid() - np.array([20.0, 30.0, 25.0])) ** 2).sum(-1))
    distance = reach[prior].min()
    assert distance == pytest.approx(4.0)
    assert np.array_equal(region, reach <= 3.0 * distance)
    # the ball is round in mm: along the 2.5 mm axis it spans fewer voxels
    assert region[20, 30, 10 + 4] and not region[20, 30, 10 + 5]
    assert region[20 - 10, 30, 10] and not region[20 - 13, 30, 10]


def test_a_negative_click_inside_measures_to_the_outside_and_the_minimum_radius_holds():
    prior = ball((20.0, 20.0, 25.0), 8.0)
    click = Point((20.0, 20.0, 10.0), False)  # the centre: 8 mm from the outside
    region = edit_region(prior, [click], SPACING, WHOLE, factor=2.0, min_mm=0.0)
    reach = np.sqrt(((mm_grid() - np.array([20.0, 20.0, 25.0])) ** 2).sum(-1))
    outside = reach[~prior].min()
    assert 8.0 < outside < 9.5
    assert np.array_equal(region, reach <= 2.0 * outside)
    big = edit_region(prior, [click], SPACING, WHOLE, factor=2.0, min_mm=30.0)
    assert np.array_equal(big, reach <= 30.0)


def test_agreeing_clicks_no_prior_and_factor_zero_ask_for_no_limit():
    prior = ball((20.0, 20.0, 25.0), 6.0)
    inside, outside = Point((20.0, 20.0, 10.0), True), Point((2.0, 2.0, 2.0), False)
    assert edit_region(prior, [inside, outside], SPACING, WHOLE, 3.0, 5.0) is None
    assert edit_region(np.zeros(SHAPE, bool), [Point((1, 1, 1))], SPACING, WHOLE, 3.0, 5.0) \
        is None
    assert edit_region(prior, [Point((2.0, 2.0, 2.0))], SPACING, WHOLE, 0.0, 5.0) is None
    # two disagreeing clicks: the union of their balls; the agreeing one adds nothing
    a, b = Point((20.0, 33.0, 10.0), True), Point((20.0, 7.0, 10.0), True)
    one = edit_region(prior, [a], SPACING, WHOLE, 1.5, 0.0)
    other = edit_region(prior, [b], SPACING, WHOLE, 1.5, 0.0)
    two = edit_region(prior, [a, inside, b], SPACING, WHOLE, 1.5, 0.0)
    assert one.any() and other.any() and not (one & other).any()
    assert np.array_equal(two, one | other)


def test_the_region_is_given_on_the_sub_box_the_crop_covers():
    prior = ball((20.0, 20.0, 25.0), 6.0)
    click = Point((20.0, 30.0, 10.0), True)
    box = [(10, 35), (15, 40), (4, 16)]
    whole = edit_region(prior, [click], SPACING, WHOLE, 3.0, 2.0)
    part = edit_region(prior, [click], SPACING, box, 3.0, 2.0)
    assert part.shape == (25, 25, 12)
    assert np.array_equal(part, whole[10:35, 15:40, 4:16])


@pytest.fixture(scope="module")
def lobed():
    """A 2 mm CT-like volume: a bright two-lobed object (a big ellipsoid and a lobe on its side)
    in noisy soft tissue."""
    shape = (72, 72, 48)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1) * 2.0
    body = (((idx - [72.0, 72.0, 48.0]) / [30.0, 22.0, 20.0]) ** 2).sum(-1) <= 1
    lobe = (((idx - [72.0, 100.0, 48.0]) / [12.0, 12.0, 12.0]) ** 2).sum(-1) <= 1
    rng = np.random.default_rng(3)
    image = 40 + 10 * rng.normal(size=shape)
    image[body | lobe] += 120
    volume = Volume.from_spatial(image.astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    return volume, body | lobe, body


def test_a_correcting_click_changes_the_mask_only_near_itself(lobed):
    """The missed lobe is clicked: with local edits nothing outside the allowed ball changes,
    and most of the missed lobe is added."""
    volume, obj, body = lobed
    model = load_model(MODEL)
    model.policy = dataclasses.replace(model.policy, local_factor=3.0, local_min_mm=10.0)
    click = next_click(body, obj, volume.spacing)
    assert click is not None and click.positive
    prompts = Prompts((Point((36.0, 36.0, 24.0)), click), mask=body)
    mask = Segmenter(model)(volume, "lobed", prompts=prompts).labels.data.astype(bool)
    region = edit_region(body, prompts.points, volume.spacing, [(0, n) for n in obj.shape],
                         3.0, 10.0)
    assert region is not None and 0 < region.mean() < 0.5
    assert np.array_equal(mask[~region], body[~region])
    missed = obj & ~body
    assert (mask & missed).sum() >= 0.7 * missed.sum()


def test_the_shipped_model_uses_local_edits_and_a_bad_value_is_refused(tmp_path):
    config = read_config(MODEL)
    assert config.crop.local_factor > 0 and config.crop.local_min_mm > 0
    folder = tmp_path / "bad"
    shutil.copytree(MODEL, folder)
    raw = json.loads((folder / CONFIG_NAME).read_text())
    raw["crop"]["local_factor"] = -1
    (folder / CONFIG_NAME).write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"click3d\.json.*'crop'"):
        read_config(folder)


def test_the_searches_agree_with_brute_force():
    """The nearest-voxel search in growing cubes and the ball in its bounding box give what a
    computation over every voxel gives (points inside and outside the array, any spacing)."""
    from medseg.models.click3d.local import _ball, _distance_mm

    rng = np.random.default_rng(0)
    for _ in range(120):
        shape = tuple(int(n) for n in rng.integers(5, 30, 3))
        spacing = rng.uniform(0.5, 5, 3)
        sub = rng.random(shape) < rng.choice([0.0005, 0.01, 0.3])
        where = rng.uniform(-5, np.array(shape) + 5)
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
        squared = (((grid - where) * spacing) ** 2).sum(-1)
        dist = np.sqrt(squared)
        expected = float(dist[sub].min()) if sub.any() else float("inf")
        assert _distance_mm(sub, where, spacing) == pytest.approx(expected)
        radius = float(rng.uniform(0, 30))
        region = np.zeros(shape, bool)
        _ball(region, where, radius, spacing)
        assert np.array_equal(region, squared <= radius ** 2)
