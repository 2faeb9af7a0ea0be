"""Synthetic heads with skull, scalp and face as click3d training volumes: the whole brain as
the target inside a head, which the bundled brain dataset (skull-stripped template) lacks.

The heads come from :func:`medseg.synth.generator.synthesize` on the training label maps of a
brain dataset (random deformation, head shells, face, contrast, resolution, bias, noise; rarely
skull-stripped). A :class:`HeadPool` keeps a few such volumes as :class:`.sources.Case` and
replaces one at a time, so drawing a crop stays cheap while the pool keeps changing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from medseg.synth.generator import SynthSettings, SynthSource, synthesize
from medseg.training.click3d.sources import Case, Target, make_case, training_pairs

#: the whole brain (every brain class) as the target
BRAIN = (Target("brain", (1,)),)
#: mostly heads with skull and face: what a real head scan shows around the brain
HEAD_SETTINGS = replace(SynthSettings(), p_skull_strip=0.1, p_head=0.85, p_face=0.8,
                        fov_fraction=(0.8, 1.0))


def head_sources(folder: str | Path, n_brain: int = 3) -> list[SynthSource]:
    """One source per training label map (``labelsTr``) of an nnU-Net-style brain dataset,
    with its image."""
    out = []
    for image_path, label_path in training_pairs(folder):
        lab = nib.load(str(label_path))
        img = nib.load(str(image_path))
        spacing = tuple(float(z) for z in lab.header.get_zooms()[:3])
        out.append(SynthSource.build(np.asarray(lab.dataobj).astype(np.int16), spacing,
                                     lab.affine, n_brain,
                                     np.asarray(img.dataobj, dtype=np.float32)))
    return out


def head_case(source: SynthSource, gen: torch.Generator,
              settings: SynthSettings = HEAD_SETTINGS) -> Case:
    """One synthetic head as a training case; its target is the whole brain."""
    sample = synthesize(source, gen, settings)
    brain = (sample.label > 0).numpy().astype(np.uint8)
    return make_case(sample.image.numpy(), brain, source.spacing, BRAIN)


class HeadPool:
    """``size`` synthetic heads; :meth:`refresh` replaces the oldest with a new draw."""

    def __init__(self, sources: Sequence[SynthSource], size: int, seed: int) -> None:
        self.sources = list(sources)
        self.gen = torch.Generator().manual_seed(seed)
        self.cases: list[Case] = []
        self.next = 0
        for _ in range(size):
            self.cases.append(self._draw())

    def _draw(self) -> Case:
        k = int(torch.randint(0, len(self.sources), (), generator=self.gen))
        return head_case(self.sources[k], self.gen)

    def refresh(self) -> None:
        self.cases[self.next] = self._draw()
        self.next = (self.next + 1) % len(self.cases)
