"""medseg-deeplab: DeepLabV3+ (Chen et al. 2018) as a medseg architecture plugin."""

from medseg_deeplab.model import DeepLabV3Plus

__all__ = ["DeepLabV3Plus"]
__version__ = "0.1.0"
