"""Quality flags: compare a segmentation with what its model saw in training.

:mod:`medseg.qc.record` computes a model's training record (kept in its bundle);
:mod:`medseg.qc.checks` compares each result and its input with it (see ``docs/qc.md``).
"""

from medseg.qc.checks import QC, Finding, check_segmentation
from medseg.qc.record import training_record

__all__ = ["QC", "Finding", "check_segmentation", "training_record"]
