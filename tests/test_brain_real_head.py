"""The shipped brain model on a real person it never saw: ITK's example T1 head
(``sample_data/real_mri``, 2 x 2 x 3 mm, with skull, scalp and part of the face; another source
than the MNI template the model learnt from), scored against the brain outline distributed
with it. The figures are in README's model table; these bounds keep them from regressing."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.engine.segmenter import Segmenter
from medseg.evaluation.metrics import dice
from medseg.models import load_model
from tests.brain_datasets import validate_brain_script


@pytest.fixture(scope="module")
def brain():
    from medseg.plugins import get_plugin_manager
    from medseg.registry import build_registry

    registry = build_registry(get_plugin_manager())
    return Segmenter(load_model("brain_tissue", registry, "cpu"), registry=registry)


@pytest.fixture(scope="module")
def heads():
    """The head as it is and skull-stripped, each with its outline, as validate_brain.py
    builds them for the figures it records."""
    return validate_brain_script().real_head_cases()


@pytest.mark.parametrize(("variant", "min_dice"), [("with_skull", 0.92), ("stripped", 0.94)])
def test_brain_of_a_real_head_is_found_with_and_without_skull(brain, heads, variant, min_dice):
    image, outline = heads[variant]
    result = brain(image)
    pred = result.labels.data
    assert pred.shape == outline.shape
    score = dice(pred > 0, outline)
    assert score >= min_dice, f"brain Dice {score:.3f}"
    voxel_ml = float(np.prod(image.spacing)) / 1000
    brain_ml, outline_ml = float((pred > 0).sum()) * voxel_ml, float(outline.sum()) * voxel_ml
    assert 0.85 < brain_ml / outline_ml < 1.15, (brain_ml, outline_ml)
    # nothing is labelled in the air or on the scalp far from the outline
    from scipy import ndimage

    far = ndimage.distance_transform_edt(~outline, sampling=image.spacing) > 10.0
    assert float((pred[far] > 0).sum()) * voxel_ml < 5.0
    # all three classes, white matter inside grey matter as in a brain
    volumes = {r["name"]: r["volume_ml"] for r in result.volumes()}
    assert volumes["grey_matter"] > volumes["white_matter"] > volumes["csf"] > 10
    assert result.qc.status == "ok", result.qc.reasons
