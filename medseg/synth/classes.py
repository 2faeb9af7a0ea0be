"""Label values of the synthetic head: the brain classes of the source plus extra head classes.

The brain classes (1..``n_brain``) keep their values. The head classes are drawn around the
brain mask (see :mod:`medseg.synth.head`) and exist only inside the generator: they get their
own intensities, then :func:`collapse` turns them into background before a training target is
made, because the shipped model's labels are those of the source (background, WM, GM, CSF).
"""

from __future__ import annotations

import torch

#: head classes, numbered after the brain classes (offsets from ``n_brain + 1``)
HEAD_CLASSES = ("extra_cerebral_csf", "skull", "scalp_muscle", "scalp_fat", "neck_soft_tissue",
                "skull_marrow", "eye", "orbital_fat", "sinus_air")


def head_values(n_brain: int) -> dict[str, int]:
    """Value of each head class for a source with brain classes ``1..n_brain``."""
    return {name: n_brain + 1 + i for i, name in enumerate(HEAD_CLASSES)}


def n_classes(n_brain: int) -> int:
    """Number of values in a synthetic head label map (background included)."""
    return n_brain + 1 + len(HEAD_CLASSES)


def collapse(labels: torch.Tensor, n_brain: int) -> torch.Tensor:
    """The training target: head classes become background, brain classes are unchanged."""
    return torch.where(labels > n_brain, torch.zeros_like(labels), labels)
