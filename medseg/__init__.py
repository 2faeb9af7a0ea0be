"""medseg: plugin-based medical image segmentation with exact geometry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("medseg")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from medseg.errors import MedsegError
from medseg.volume import LabelMap, Volume

__all__ = ["LabelMap", "MedsegError", "Volume", "__version__"]
