"""Prompt objects, world/voxel conversion, simulated clicks and the prompt session."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.engine.interactive import PromptSession
from medseg.engine.segmenter import Segmenter
from medseg.errors import InputError
from medseg.models.loading import load_model
from medseg.prompts.parse import parse_box, parse_point
from medseg.prompts.resolve import resolve_prompts, world_to_voxel
from medseg.prompts.simulate import first_click, next_click
from medseg.prompts.types import Box, Point, PromptSpec
from medseg.registry import build_registry
from medseg.volume import Volume
from tests import plugin_regiongrow
from tests.conftest import oblique_affine


def test_world_points_land_on_the_voxel_the_affine_says():
    affine = oblique_affine()
    volume = Volume.from_spatial(np.zeros((30, 20, 10), np.float32), affine)
    ijk = np.array([[3.0, 4.0, 5.0], [29.0, 0.0, 9.0]])
    world = (affine @ np.c_[ijk, np.ones(2)].T).T[:, :3]
    assert np.allclose(world_to_voxel(volume, world), ijk, atol=1e-9)
    spec = PromptSpec((Point(tuple(world[0]), False),), (Box(tuple(world[0]), tuple(world[1])),))
    prompts = resolve_prompts(spec, volume, "case.nii.gz")
    assert np.allclose(prompts.points[0].position, ijk[0]) and not prompts.points[0].positive
    assert np.allclose(prompts.boxes[0].lo, [3, 0, 5]) and np.allclose(prompts.boxes[0].hi,
                                                                      [29, 4, 9])


def test_a_flat_box_lies_on_one_slice_and_a_box_partly_outside_is_clipped():
    volume = Volume.from_spatial(np.zeros((30, 20, 10), np.float32), np.eye(4))
    spec = PromptSpec(boxes=(parse_box("-5,2,4.2,12,40,4.4"),), voxel=True)
    box = resolve_prompts(spec, volume).boxes[0]
    assert box.flat_axis == 2 and box.lo == (0.0, 2.0, 4.0) and box.hi == (12.0, 19.0, 4.0)
    with pytest.raises(InputError, match="outside the image"):
        resolve_prompts(PromptSpec(boxes=(parse_box("40,2,4,50,6,8"),), voxel=True), volume)


def test_points_on_a_2d_image_and_their_dimension_check():
    volume = Volume.from_spatial(np.zeros((30, 20), np.float32),
                                 np.diag([0.5, 0.5, 1.0, 1.0]))
    point = resolve_prompts(PromptSpec((parse_point("5,3"),)), volume).points[0]
    assert point.position == (10.0, 6.0)
    with pytest.raises(InputError, match="has 3 coordinates but the image is 2-D"):
        resolve_prompts(PromptSpec((parse_point("5,3,1"),)), volume)


def test_simulated_clicks_go_to_the_centre_of_the_object_and_of_the_largest_error():
    ref = np.zeros((40, 30, 20), bool)
    ref[10:30, 5:25, 5:15] = True
    first = first_click(ref, spacing=(1.0, 1.0, 1.0))
    assert first.positive and np.allclose(first.position, (19.5, 14.5, 9.5), atol=0.5)
    pred = ref.copy()
    pred[10:30, 5:12, 5:15] = False  # a missed slab of 7 voxels in y
    pred[0:3, 0:3, 0:3] = True  # a small false blob
    click = next_click(pred, ref)
    assert click.positive and 7 <= click.position[1] <= 9 and 14 <= click.position[0] <= 25
    pred = ref.copy()
    pred[32:40, 0:30, 0:20] = True  # a large false slab
    click = next_click(pred, ref)
    assert not click.positive and click.position[0] >= 32
    assert next_click(ref, ref) is None
    with pytest.raises(ValueError, match="empty"):
        first_click(np.zeros((3, 3, 3), bool))


def test_a_session_refines_with_each_click_and_undo_goes_back(tmp_path, plugin_manager):
    plugin_manager.register(plugin_regiongrow)
    registry = build_registry(plugin_manager)
    model = load_model(plugin_regiongrow.write_model(tmp_path / "grow"), registry)
    image = np.zeros((30, 30, 30), np.float32)
    image[5:12, 5:12, 5:12] = 100
    image[18:26, 18:26, 18:26] = 100
    volume = Volume.from_spatial(image, oblique_affine())
    session = PromptSession(Segmenter(model, registry=registry), volume, "case")
    first = session.add_point((8, 8, 8))
    assert first.sum() == 7 ** 3 and len(session) == 1
    both = session.add_point((22, 22, 22))
    assert both.sum() == 7 ** 3 + 8 ** 3
    assert session.undo().sum() == 7 ** 3 and len(session) == 1
    assert session.undo() is None and len(session) == 0
    with pytest.raises(InputError, match="outside the image"):
        session.add_point((40, 8, 8))
    assert len(session) == 0
