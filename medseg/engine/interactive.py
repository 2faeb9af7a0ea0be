"""Segment by pointing: one image, one promptable model, prompts added one at a time.

Each prompt is answered by a new mask; the model also gets the previous mask to refine where
it takes one (``"mask"`` in its ``info.prompts``). :meth:`PromptSession.undo` goes back one
step. The UI's prompt mode and the interactive evaluation (:mod:`medseg.evaluation.interactive`)
both drive this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.engine.segmenter import Segmentation, Segmenter
from medseg.errors import MedsegError
from medseg.prompts.resolve import check_prompts
from medseg.prompts.types import Box, Point, Prompts
from medseg.volume import Volume


@dataclass
class _Step:
    prompts: Prompts
    result: Segmentation | None


class PromptSession:
    """Prompts on one image (voxel indices of its array) and the mask they produce."""

    def __init__(self, segmenter: Segmenter, volume: Volume, where: str = "input",
                 init: np.ndarray | None = None) -> None:
        if not segmenter.promptable:
            raise MedsegError(f"model {segmenter.name!r} takes no prompts")
        self.segmenter, self.volume, self.where = segmenter, volume, where
        self.refines = all("mask" in m.info.prompts for m in segmenter.models if m.info.prompts)
        start = Prompts() if init is None else check_prompts(Prompts(mask=init), volume, where)
        self._steps: list[_Step] = [_Step(start, None)]

    @property
    def prompts(self) -> Prompts:
        return self._steps[-1].prompts

    @property
    def result(self) -> Segmentation | None:
        """The latest answer (None before the first prompt)."""
        return self._steps[-1].result

    @property
    def mask(self) -> np.ndarray | None:
        """The latest mask (boolean, the input's spatial shape), or the initial one."""
        if self.result is not None:
            return self.result.labels.data != 0
        return self.prompts.mask

    def __len__(self) -> int:
        """Prompts given so far."""
        return len(self.prompts.points) + len(self.prompts.boxes)

    def add_point(self, position: Sequence[float], positive: bool = True) -> np.ndarray:
        return self._run(self.prompts.with_point(Point(tuple(map(float, position)), positive)))

    def add_box(self, lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
        return self._run(self.prompts.with_box(Box(tuple(map(float, lo)),
                                                   tuple(map(float, hi)))))

    def undo(self) -> np.ndarray | None:
        """Forget the last prompt; the mask before it."""
        if len(self._steps) > 1:
            self._steps.pop()
        return self.mask

    def _run(self, prompts: Prompts) -> np.ndarray:
        prompts = check_prompts(prompts, self.volume, self.where)  # before anything changes
        given = prompts.with_mask(self.mask if self.refines else None)
        result = self.segmenter(self.volume, self.where, prompts=given)
        self._steps.append(_Step(prompts.with_mask(self.prompts.mask), result))
        return self.mask
