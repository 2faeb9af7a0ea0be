"""Training crops drawn in worker processes, so that the network's device is not kept waiting.

Drawing a crop is CPU work (resampling a case, painting a synthetic scene, synthesising a head,
placing the first click); on a GPU the network's step takes a fraction of it, and one process
drawing four crops per step leaves the GPU idle most of the time. :class:`CropStream` draws
``(image, target, first prompts)`` without end in each worker of a
:class:`torch.utils.data.DataLoader` (:func:`crop_loader`); the loop batches them and runs the
simulated correcting rounds (which need the current network) and the step on its device.

Each worker has its own random streams, seeded from the run's seed and its worker number (two
runs with the same seed and workers draw the same crops in the same order), and its own pool
of synthetic heads, refreshed at the rate the in-process loop refreshes its pool (one head per
``head_refresh_every`` batches of crops drawn).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from medseg.training.click3d.clicks import PromptState, initial_prompts
from medseg.training.click3d.heads import HeadPool
from medseg.training.click3d.settings import TrainSettings
from medseg.training.click3d.shapes import synthetic_crop
from medseg.training.click3d.sources import real_crop

if TYPE_CHECKING:
    from medseg.training.click3d.sources import Case

Drawn = tuple[torch.Tensor, torch.Tensor, PromptState]


def draw_crop(cases: Sequence[Case], s: TrainSettings, rng: np.random.Generator,
              gen: torch.Generator, heads: HeadPool | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """One training ``(image, target)`` crop: from a synthetic head (``p_head``), a synthetic
    scene (``p_synthetic``, or always when there are no cases) or a real case."""
    n = s.crop.size
    r = rng.random()
    if heads is not None and r < s.p_head:
        return real_crop(heads.cases, n, s.crop.coarse_spacing_mm, s.margin_range, rng, gen,
                         p_repaint=0.0)
    if not cases or r < s.p_head + s.p_synthetic:
        return synthetic_crop(n, rng, gen, s.p_large)
    return real_crop(cases, n, s.crop.coarse_spacing_mm, s.margin_range, rng, gen)


def worker_streams(seed: int, worker: int) -> tuple[np.random.Generator, torch.Generator]:
    """The numpy and torch random streams of one worker of a run."""
    seq = np.random.SeedSequence([seed, worker])
    torch_seed = int(seq.generate_state(1, dtype=np.uint64)[0] % (2**63))
    return np.random.default_rng(seq), torch.Generator().manual_seed(torch_seed)


class CropStream(IterableDataset):
    """Training crops with their first prompts, without end (see the module docstring)."""

    def __init__(self, cases: Sequence[Case], settings: TrainSettings,
                 heads: HeadPool | None = None) -> None:
        super().__init__()
        self.cases = list(cases)
        self.settings = settings
        #: the sources and pool size of the heads; each worker draws a pool of its own
        self.head_sources = heads.sources if heads is not None else None
        self.head_pool = len(heads.cases) if heads is not None else 0

    def __iter__(self) -> Iterator[Drawn]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        s = self.settings
        torch.set_num_threads(1)
        rng, gen = worker_streams(s.seed, worker)
        heads = None
        if self.head_sources is not None:
            heads = HeadPool(self.head_sources, self.head_pool,
                             int(rng.integers(2**31 - 1)))
        refresh = max(1, s.head_refresh_every * s.batch)
        drawn = 0
        while True:
            if heads is not None and drawn and drawn % refresh == 0:
                heads.refresh()
            image, target = draw_crop(self.cases, s, rng, gen, heads)
            drawn += 1
            yield image, target, initial_prompts(target, rng)


def as_lists(batch: list[Drawn]) -> tuple[list[Any], ...]:
    """Collate: images, targets and prompt states as three lists (crops are not stacked
    until the prompts are encoded)."""
    return tuple(list(column) for column in zip(*batch, strict=True))


def crop_loader(cases: Sequence[Case], settings: TrainSettings,
                heads: HeadPool | None = None) -> DataLoader:
    """Batches of ``settings.batch`` crops drawn by ``settings.workers`` processes."""
    return DataLoader(CropStream(cases, settings, heads), batch_size=settings.batch,
                      num_workers=settings.workers, collate_fn=as_lists,
                      persistent_workers=settings.workers > 0,
                      prefetch_factor=4 if settings.workers > 0 else None)
