"""nnU-Net v2 result folders (and so TotalSegmentator models) run by medseg.

One module per concept: :mod:`.folder` (trainer/dataset folders, folds, checkpoints),
:mod:`.plans` (plans.json and dataset.json), :mod:`.checkpoint` (safe loading),
:mod:`.network` (allow-listed architectures), :mod:`.preprocessing`, :mod:`.resampling`,
:mod:`.sliding_window` and :mod:`.model` (the :class:`~medseg.models.base.SegmentationModel`).
"""

from medseg.models.nnunet.folder import sniff as sniff_nnunet
from medseg.models.nnunet.model import FORMAT, OPTIONS, NnunetModel
from medseg.models.nnunet.model import describe as describe_nnunet
from medseg.models.nnunet.model import load as load_nnunet

__all__ = ["FORMAT", "OPTIONS", "NnunetModel", "describe_nnunet", "load_nnunet", "sniff_nnunet"]
