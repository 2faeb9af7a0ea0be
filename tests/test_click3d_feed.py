"""click3d training with its crops drawn in worker processes (medseg.training.click3d.feed)
and its network on the device the settings name."""

from __future__ import annotations

from dataclasses import replace
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.errors import MedsegError
from medseg.models.click3d.config import CropPolicy
from medseg.models.click3d.model import load_click3d
from medseg.training.click3d.feed import CropStream, crop_loader, worker_streams
from medseg.training.click3d.heads import HeadPool, head_sources
from medseg.training.click3d.loop import TrainSettings, train
from medseg.training.click3d.sources import Target, load_cases

ROOT = Path(__file__).resolve().parents[1]
TINY = replace(TrainSettings(), max_iterations=4, seconds=120, batch=2, channels=(4, 8, 16),
               strides=(2, 2), validate_every=2, checkpoint_every=2, device="cpu",
               crop=CropPolicy(size=24, coarse_spacing_mm=4.0))


@pytest.fixture(scope="module")
def spleens():
    """The spleens of the bundled abdomen dataset's training split, as training cases."""
    return load_cases(ROOT / "sample_data" / "Dataset002_AbdomenCT", (Target("spleen", (2,)),))


def _crops(stream: CropStream, n: int) -> list[np.ndarray]:
    return [image.numpy() for image, _, _ in islice(iter(stream), n)]


def test_each_worker_draws_its_own_crops_and_a_seed_repeats_them(spleens):
    settings = replace(TINY, p_synthetic=0.5, seed=4)
    first = _crops(CropStream(spleens, settings), 3)
    again = _crops(CropStream(spleens, settings), 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    other = _crops(CropStream(spleens, replace(settings, seed=5)), 3)
    assert not any(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    (rng0, gen0), (rng1, gen1) = worker_streams(4, 0), worker_streams(4, 1)
    assert rng0.random() != rng1.random()
    assert not torch.equal(torch.rand(4, generator=gen0), torch.rand(4, generator=gen1))


def test_two_workers_give_batches_of_crops_with_their_first_prompts(spleens):
    settings = replace(TINY, p_synthetic=0.0, workers=2, batch=3, seed=1)
    batches = list(islice(iter(crop_loader(spleens, settings)), 2))
    for images, targets, states in batches:
        assert len(images) == len(targets) == len(states) == 3
        for image, target, state in zip(images, targets, states, strict=True):
            assert image.shape == target.shape == (24, 24, 24)
            assert target.any() and not target.all()  # a spleen, not all of the crop
            assert state.positive or state.boxes or state.prior is not None
    # the two workers' crops interleave: no crop is drawn twice
    flat = [im.numpy() for images, _, _ in batches for im in images]
    assert not any(np.array_equal(flat[i], flat[j]) for i in range(6) for j in range(i))


def test_training_fed_by_workers_with_heads_writes_a_loadable_model(tmp_path, spleens):
    pool = HeadPool(head_sources(ROOT / "sample_data" / "Dataset001_BrainTissue")[:1], 1, 2)
    settings = replace(TINY, workers=2, p_head=0.3, p_synthetic=0.3, head_refresh_every=1)
    facts = train(tmp_path / "tiny", spleens, settings, data_note="workers (test)", heads=pool)
    stage = facts["stages"][-1]
    assert facts["complete"] and facts["iterations"] == 4
    assert (stage["device"], stage["workers"], stage["p_head"]) == ("cpu", 2, 0.3)
    assert np.isfinite(facts["validation"][0]["loss"])
    model = load_click3d(tmp_path / "tiny")
    assert all(p.device.type == "cpu" for p in model.net.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_one_line(tmp_path):
    with pytest.raises(MedsegError, match="CUDA is not available"):
        train(tmp_path / "tiny", [], replace(TINY, device="cuda"), data_note="x")
