"""Prompts for promptable models: points and boxes on an image, and a mask to refine.

Modules: :mod:`~medseg.prompts.types` (the prompt objects, in voxel indices of the input),
:mod:`~medseg.prompts.parse` (``--point``/``--box`` text, world millimetres or voxels, and
``--prompts FILE.json``), :mod:`~medseg.prompts.resolve` (world to voxel, checks against the
image), :mod:`~medseg.prompts.simulate` (the clicks a user would make, for training and
interactive evaluation) and :mod:`~medseg.prompts.session` (one image, prompts added one by one,
with undo).
"""

from medseg.prompts.types import Box, Point, Prompts, PromptSpec

__all__ = ["Box", "Point", "PromptSpec", "Prompts"]
