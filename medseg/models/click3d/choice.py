"""Choosing among a click's answers by how sure the network is of each.

A click alone does not say how much of what surrounds it the user means: the fat in a kidney's
sinus or the whole kidney, a lesion or the liver around it. click3d describes the clicked tissue
by the intensities near the click (the ``similarity`` channel); a model folder may list several
radii for that description (``guidance.similarity_radii``), the model answers once per radius,
and keeps the answer it is surest of, as SAM keeps the best of its three masks by predicted IoU
(here the network's own certainty stands in for the IoU head it does not have).
"""

from __future__ import annotations

import torch


def certainty(probability: torch.Tensor, threshold: float = 0.5) -> float:
    """How sure the network is of the mask it draws: the soft IoU of ``probability`` with its
    own mask ``m = probability >= threshold``, ``sum(min(p, m)) / sum(max(p, m))``. 1 when every
    voxel is 0 or 1; lower as more voxels in or around the mask are unsure; 0 for an empty mask.
    """
    p = probability.float()
    m = (p >= threshold).float()
    if not bool(m.any()):
        return 0.0
    return float(torch.minimum(p, m).sum() / torch.maximum(p, m).sum())
