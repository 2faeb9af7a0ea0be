"""click3d training on synthetic heads: the whole brain as the target inside a head with skull,
scalp and face, drawn from the bundled brain dataset's training label maps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.models.click3d.config import CropPolicy
from medseg.training.click3d.heads import HeadPool, head_case, head_sources
from medseg.training.click3d.loop import TrainSettings, draw_crop, train
from medseg.training.click3d.sources import real_crop

ROOT = Path(__file__).resolve().parents[1]
BRAIN_DATA = ROOT / "sample_data" / "Dataset001_BrainTissue"


@pytest.fixture(scope="module")
def sources():
    return head_sources(BRAIN_DATA)


def test_a_synthetic_head_has_the_brain_as_target_and_tissue_around_it(sources):
    assert len(sources) == 10  # the training split only (imagesTs/labelsTs are never read)
    gen = torch.Generator().manual_seed(3)
    shells = []
    for _ in range(3):
        case = head_case(sources[0], gen)
        (name, mask, extent, deep, _w, _middle), = case.targets
        brain = mask.numpy()
        assert name == "brain" and brain.sum() > 50_000
        assert 120 < extent < 260  # mm: an adult brain, deformed
        assert brain[tuple(deep.T)].all()  # candidate clicks lie inside it
        ring = ndimage.binary_dilation(brain, iterations=4) & ~brain
        # outside the brain the head is painted (skull, scalp), not the zero of a stripped scan
        shells.append(float((case.image.numpy()[ring] > 0.02).mean()))
    assert max(shells) > 0.9


def test_the_pool_replaces_its_oldest_head_and_gives_crops_with_the_brain(sources):
    pool = HeadPool(sources[:2], 2, seed=1)
    first = pool.cases[0]
    pool.refresh()
    assert pool.cases[0] is not first and pool.next == 1
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    image, target = real_crop(pool.cases, 32, 4.0, (1.1, 3.0), rng, gen, p_repaint=0.0)
    assert image.shape == target.shape == (32, 32, 32) and target.any() and not target.all()
    settings = replace(TrainSettings(), p_head=1.0, crop=CropPolicy(size=32))
    _, target = draw_crop([], settings, rng, gen, pool)
    assert target.any()


def test_training_with_heads_records_them(tmp_path, sources):
    pool = HeadPool(sources[:1], 1, seed=2)
    settings = replace(TrainSettings(), max_iterations=2, seconds=60, batch=2, p_head=0.5,
                       channels=(4, 8, 16), strides=(2, 2), validate_every=2,
                       checkpoint_every=2, head_refresh_every=1,
                       crop=CropPolicy(size=24, coarse_spacing_mm=4.0))
    facts = train(tmp_path / "tiny", [], settings, data_note="heads (test)", heads=pool)
    assert facts["iterations"] == 2 and facts["stages"][-1]["p_head"] == 0.5
