"""Segment by pointing: one image, one promptable model, prompts added one at a time.

Each prompt is answered by a new mask; the model also gets the previous mask to refine where
it takes one (``"mask"`` in its ``info.prompts``). :meth:`PromptSession.undo` goes back one
step. Where the model offers several answers to a prompt (``info.answers``),
:meth:`PromptSession.choose` answers the last prompt again with another one; the next prompt
is answered with the model's first answer again, refining the mask chosen (as SAM offers its
three masks for the first click and refines the one kept after). The UI's prompt mode and the
interactive evaluation (:mod:`medseg.evaluation.interactive`) both drive this.
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
    #: the mask this step's answer refined (the one before its prompt)
    refined: np.ndarray | None = None


def _mask_of(step: _Step) -> np.ndarray | None:
    """A step's mask: its answer's, or (before any prompt) the initial one."""
    if step.result is not None:
        return step.result.labels.data != 0
    return step.prompts.mask


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
        return _mask_of(self._steps[-1])

    def __len__(self) -> int:
        """Prompts given so far."""
        return len(self.prompts.points) + len(self.prompts.boxes)

    def add_point(self, position: Sequence[float], positive: bool = True) -> np.ndarray:
        point = Point(tuple(map(float, position)), positive)
        return self._run(self.prompts.with_answer(0).with_point(point))

    def add_box(self, lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
        box = Box(tuple(map(float, lo)), tuple(map(float, hi)))
        return self._run(self.prompts.with_answer(0).with_box(box))

    @property
    def answers(self) -> int:
        """How many answers to a prompt the model offers (the fewest of its models)."""
        return min((m.info.answers for m in self.segmenter.models if m.info.prompts),
                   default=1)

    @property
    def answer(self) -> int:
        """The answer (0: the model's first) the latest prompt was given with."""
        return self.prompts.answer

    def choose(self, answer: int) -> np.ndarray | None:
        """Answer the last prompt again with the model's ``answer``-th answer (0: its first),
        refining what was there before that prompt; a new step (undo goes back to the answer
        before). The segmenter checks that its models offer that answer."""
        if len(self._steps) == 1:
            raise MedsegError("no prompt to answer yet: an answer is chosen for the last prompt")
        last = self._steps[-1]
        prompts = check_prompts(last.prompts.with_answer(answer), self.volume, self.where)
        result = self.segmenter(self.volume, self.where, prompts=prompts.with_mask(
            last.refined if self.refines else None))
        self._steps.append(_Step(prompts.with_mask(last.prompts.mask), result, last.refined))
        return self.mask

    def undo(self) -> np.ndarray | None:
        """Forget the last prompt; the mask before it."""
        if len(self._steps) > 1:
            self._steps.pop()
        return self.mask

    def _run(self, prompts: Prompts) -> np.ndarray:
        prompts = check_prompts(prompts, self.volume, self.where)  # before anything changes
        before = self.mask
        given = prompts.with_mask(before if self.refines else None)
        result = self.segmenter(self.volume, self.where, prompts=given)
        self._steps.append(_Step(prompts.with_mask(self.prompts.mask), result, before))
        return self.mask
