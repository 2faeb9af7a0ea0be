"""SAM-family checkpoints (MedSAM ViT-B) as promptable models, with medseg's own
implementation of SAM's network (state-dict names as SAM's) and MedSAM's inference pipeline.

One concept per module: :mod:`.config` (the network's shape from its state dict),
:mod:`.layers`, :mod:`.encoder`, :mod:`.prompt_encoder`, :mod:`.decoder`, :mod:`.network`
(SAM's three parts), :mod:`.checkpoint` (reading the weights), :mod:`.folder` (``sam.json``),
:mod:`.preprocessing` (MedSAM's image preparation), :mod:`.slices` (which slices, how shown,
propagation) and :mod:`.model` (the protocol). See docs/sam.md.
"""

from medseg.models.sam.folder import FORMAT, OPTIONS, sniff
from medseg.models.sam.model import describe, load

__all__ = ["FORMAT", "OPTIONS", "describe", "load", "sniff"]
