"""A closer look at a correcting click: the focus crop (``crop.focus_margin``).

A mask being refined sets the main crop's spacing from the whole object's extent: a brain is
seen at 5 mm, a liver at about 4 mm. A click that corrects a thin error on its border (a shell
of CSF taken with the brain, a missed rim of a kidney) asks for a change one or two of those
voxels wide, which the main crop cannot draw. As in FocalClick (Chen et al., CVPR 2022), the
correction is looked at again on a crop of its own: centred on the click, as wide as
``focus_margin`` times the ball the click may change (:mod:`.local`), at the finer spacing that
gives (never below ``min_spacing_mm``). Inside that ball the focus crop's answer replaces the
main crop's; everywhere else nothing changes.

Only the last click that disagrees with the mask (the newest correction) gets a focus crop,
and only where it is at least ``focus_ratio`` times finer than the main crop (otherwise the
main crop already sees it as closely). The focus crop's network input is built as any crop's:
the prompts inside it, the mask being refined, and the ``similarity`` channel from the positive
clicks inside it (none: zeros).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medseg.models.click3d.crop import Crop
from medseg.models.click3d.local import ball_mask, corrections
from medseg.prompts.types import Point

if TYPE_CHECKING:
    from collections.abc import Sequence

    from medseg.models.click3d.config import CropPolicy


@dataclass(frozen=True)
class Focus:
    """A focus crop and the ball (input indices, mm) whose voxels it decides."""

    crop: Crop
    centre: np.ndarray
    radius_mm: float

    def window(self, shape: Sequence[int]) -> tuple[slice, ...]:
        """The input sub-box the focus crop covers."""
        return tuple(slice(lo, hi) for lo, hi in self.crop.covered(shape))

    def ball(self, shape: Sequence[int]) -> np.ndarray:
        """Boolean on :meth:`window`: the voxels of the ball there."""
        window = self.window(shape)
        origin = np.array([s.start for s in window], dtype=float)
        return ball_mask([s.stop - s.start for s in window], self.centre - origin,
                         self.radius_mm, self.crop.input_spacing)


def focus_crop(prior: np.ndarray, points: Sequence[Point], main: Crop,
               policy: CropPolicy) -> Focus | None:
    """The focus crop of the last click that disagrees with ``prior`` (the mask being refined,
    the input's whole grid), or None (rule off, no such click, or not finer than ``main``)."""
    if policy.focus_margin <= 0:
        return None
    found = corrections(prior, points, main.input_spacing, main.covered(prior.shape),
                        policy.local_factor, policy.local_min_mm)
    if not found:
        return None
    centre, radius = found[-1]
    spacing = max(policy.min_spacing_mm, 2 * radius * policy.focus_margin / policy.size)
    if spacing * policy.focus_ratio > main.spacing:
        return None
    crop = Crop(tuple(float(c) for c in centre), spacing, main.size, main.input_spacing)
    return Focus(crop, centre, radius)
