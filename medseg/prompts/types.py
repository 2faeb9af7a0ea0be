"""The prompt objects.

:class:`Prompts` is what a promptable model receives: points and boxes in **voxel indices of
the input array, in its array order** (floats; voxel centres are integers), and optionally the
mask to refine. :class:`PromptSpec` is what a user gives before the image is read: the same
shapes in world millimetres (the input's RAS world, as its affine gives it) or in voxels;
:func:`medseg.prompts.resolve.resolve_prompts` turns one into the other against the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: prompt kinds a model can accept (``ModelInfo.prompts``)
KINDS = ("point", "box", "mask")


@dataclass(frozen=True)
class Point:
    """A click: ``position`` per spatial axis; ``positive`` False marks background."""

    position: tuple[float, ...]
    positive: bool = True


@dataclass(frozen=True)
class Box:
    """An axis-aligned box between two corners (both inclusive). An axis where the corners
    agree makes it a 2-D box on that slice (see :attr:`flat_axis`)."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]

    @property
    def flat_axis(self) -> int | None:
        """The axis of the slice a 2-D box lies on (None for a 3-D box)."""
        flat = [i for i, (a, b) in enumerate(zip(self.lo, self.hi, strict=True)) if a == b]
        return flat[0] if len(flat) == 1 else None


@dataclass(frozen=True)
class Prompts:
    """Prompts in voxel indices of the input (see the module docstring)."""

    points: tuple[Point, ...] = ()
    boxes: tuple[Box, ...] = ()
    #: boolean mask on the input's spatial grid to refine (the previous result), or None
    mask: np.ndarray | None = field(default=None, compare=False)
    #: which of the model's answers to give (0: its first; see ``ModelInfo.answers``): a click
    #: can mean a pocket or what surrounds it (the fat in a kidney's sinus or the kidney)
    answer: int = 0

    def kinds(self) -> set[str]:
        """Which of :data:`KINDS` these prompts use."""
        return ({"point"} if self.points else set()) | ({"box"} if self.boxes else set()) \
            | ({"mask"} if self.mask is not None else set())

    def __bool__(self) -> bool:
        return bool(self.points or self.boxes or self.mask is not None)

    def with_point(self, point: Point) -> Prompts:
        return Prompts((*self.points, point), self.boxes, self.mask, self.answer)

    def with_box(self, box: Box) -> Prompts:
        return Prompts(self.points, (*self.boxes, box), self.mask, self.answer)

    def with_mask(self, mask: np.ndarray | None) -> Prompts:
        return Prompts(self.points, self.boxes, mask, self.answer)

    def with_answer(self, answer: int) -> Prompts:
        return Prompts(self.points, self.boxes, self.mask, answer)


@dataclass(frozen=True)
class PromptSpec:
    """Prompts as a user gives them, before the image is read: coordinates in world mm
    (``voxel`` False) or voxel indices (``voxel`` True); ``init``: a mask file to refine;
    ``answer``: as :attr:`Prompts.answer`."""

    points: tuple[Point, ...] = ()
    boxes: tuple[Box, ...] = ()
    voxel: bool = False
    init: str | None = None
    answer: int = 0

    def __bool__(self) -> bool:
        return bool(self.points or self.boxes or self.init)
