"""Models of every format behind one protocol (:mod:`medseg.models.base`)."""

from medseg.models.base import ModelInfo, Prediction, SegmentationModel
from medseg.models.loading import describe_model, load_model, resolve_model

__all__ = ["ModelInfo", "Prediction", "SegmentationModel", "describe_model", "load_model",
           "resolve_model"]
