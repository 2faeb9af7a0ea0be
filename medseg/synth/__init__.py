"""Training images synthesised from label maps (domain randomisation, SynthSeg-style).

Billot B. et al., SynthSeg: segmentation of brain MRI scans of any contrast and resolution
without retraining. Medical Image Analysis 86 (2023) 102789.

Modules: :mod:`~medseg.synth.classes` (label values of the synthetic head),
:mod:`~medseg.synth.head` (shells around the brain), :mod:`~medseg.synth.deform` (affine and
elastic sampling grids), :mod:`~medseg.synth.contrast` (Gaussian-mixture intensities),
:mod:`~medseg.synth.artefacts` (resolution, bias, gamma, noise), :mod:`~medseg.synth.generator`
(one synthetic scan) and :mod:`~medseg.synth.stream` (training patches).
"""

from medseg.synth.generator import SynthSample, SynthSettings, SynthSource, synthesize
from medseg.synth.stream import SynthPatches

__all__ = ["SynthPatches", "SynthSample", "SynthSettings", "SynthSource", "synthesize"]
