"""Training patches from the generator: an endless ``torch`` iterable dataset.

Each draw synthesises a whole field of view, normalises it as inference will (the bundle's
intensity scheme on the whole image), then cuts ``samples`` patches from it, centred on a brain
voxel with probability ``p_foreground`` (zero-padded where the view is smaller than a patch,
as sliding-window inference pads). Items are ``{"image": 1, *patch, "label": 1, *patch}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from medseg.ops.preprocess import normalize
from medseg.synth.generator import SynthSettings, SynthSource, synthesize


def _pad_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    extra = [max(0, int(p) - int(n)) for p, n in zip(size, x.shape, strict=True)]
    if not any(extra):
        return x
    padding = [v for e in reversed(extra) for v in (e // 2, e - e // 2)]
    return F.pad(x[None, None].float(), padding)[0, 0].to(x.dtype)


def cut_patch(image: torch.Tensor, label: torch.Tensor, patch: Sequence[int],
              gen: torch.Generator, p_foreground: float = 0.85
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``patch``-sized crop of ``image`` and ``label`` (``X, Y, Z``), zero-padded if needed."""
    image, label = _pad_to(image, patch), _pad_to(label, patch)
    fg = torch.nonzero(label > 0)
    if fg.numel() and float(torch.rand((), generator=gen)) < p_foreground:
        centre = fg[int(torch.randint(0, fg.shape[0], (), generator=gen))].tolist()
    else:
        centre = [int(torch.randint(0, n, (), generator=gen)) for n in image.shape]
    start = [min(max(0, c - p // 2), n - p) for c, p, n in zip(centre, patch, image.shape,
                                                              strict=True)]
    sl = tuple(slice(a, a + p) for a, p in zip(start, patch, strict=True))
    return image[sl], label[sl]


class SynthPatches(torch.utils.data.IterableDataset):
    """Endless synthetic training patches from ``sources`` (seeded, reproducible)."""

    def __init__(self, sources: Sequence[SynthSource], patch: Sequence[int],
                 intensity: dict[str, Any], *, samples: int = 2, seed: int = 0,
                 settings: SynthSettings | None = None) -> None:
        super().__init__()
        self.sources = list(sources)
        self.patch = tuple(int(p) for p in patch)
        self.intensity = dict(intensity)
        self.samples = max(1, int(samples))
        self.seed = int(seed)
        self.settings = settings or SynthSettings()

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed)
        while True:
            src = self.sources[int(torch.randint(0, len(self.sources), (), generator=gen))]
            sample = synthesize(src, gen, self.settings)
            image = normalize(sample.image[None], self.intensity)[0]
            for _ in range(self.samples):
                img, lab = cut_patch(image, sample.label, self.patch, gen,
                                     self.settings.p_foreground)
                yield {"image": img[None].float(), "label": lab[None].to(torch.uint8)}
