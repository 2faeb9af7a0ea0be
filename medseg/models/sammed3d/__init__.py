"""SAM-Med3D checkpoints (Wang et al., 2023; Apache-2.0) run by medseg's own implementation.

One module per concept: :mod:`.folder` (``sammed3d.json`` and the checkpoint beside it),
:mod:`.checkpoint` (weights-only loading), :mod:`.layers`, :mod:`.encoder`,
:mod:`.prompt_encoder`, :mod:`.decoder` and :mod:`.network` (the architecture, sized from the
state dict, under the authors' parameter names), :mod:`.grid` and :mod:`.crop` (the 1.5 mm grid
and the 128^3 cube), :mod:`.pipeline` (volume and prompts to the cube and back) and
:mod:`.model` (the promptable :class:`~medseg.models.base.SegmentationModel`).
"""

from medseg.models.sammed3d.folder import FORMAT, sniff
from medseg.models.sammed3d.model import SamMed3DModel, describe, load

__all__ = ["FORMAT", "SamMed3DModel", "describe", "load", "sniff"]
