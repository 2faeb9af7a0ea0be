"""The MONAI classes and functions an untrusted bundle may name, and how a name is resolved.

The allow-list is explicit: the names below, looked up once in the packages MONAI and torch
export them from. A name in a config (a ``_target_``, a ``reader``...) is accepted only when
it resolves to one of these very objects (compared by identity), and it is resolved without
importing anything and without walking attributes:

* a bare name (``"Spacingd"``, ``"NibabelReader"``) is looked up in the table of listed names;
* a dotted name ``"a.b.C"`` is accepted only when module ``a.b`` is already loaded and its own
  namespace (``vars``, not ``getattr``: no lazy-import hooks) holds ``C``, and ``C`` is one of
  the listed objects. ``"monai.transforms.Spacingd"`` and
  ``"monai.transforms.spatial.dictionary.Spacingd"`` both resolve;
  ``"monai.inferers.splitter.os.system"`` does not (no module of that name is loaded, and
  ``os`` is not a listed object anyway).

Writers (``SaveImage*``) are deliberately absent: an untrusted bundle never writes files.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

#: transforms, each with its dictionary variants (``Xd``, ``XD``, ``XDict``) where MONAI has them
TRANSFORMS = (
    "LoadImage", "EnsureChannelFirst", "Orientation", "Spacing", "ResampleToMatch",
    "ScaleIntensity", "ScaleIntensityRange", "ScaleIntensityRangePercentiles",
    "NormalizeIntensity", "ThresholdIntensity", "ClipIntensityPercentiles", "ShiftIntensity",
    "HistogramNormalize", "GaussianSmooth", "MedianSmooth",
    "CropForeground", "SpatialPad", "BorderPad", "DivisiblePad", "CenterSpatialCrop",
    "SpatialCrop", "ResizeWithPadOrCrop", "Resize", "Zoom", "Flip", "Rotate90", "Transpose",
    "EnsureType", "ToTensor", "ToNumpy", "CastToType", "SqueezeDim", "SplitDim",
    "AsChannelLast", "RepeatChannel", "Identity", "CopyItems", "ConcatItems", "DeleteItems",
    "SelectItems", "FromMetaTensor", "ToMetaTensor",
    "Activations", "AsDiscrete", "Invert", "KeepLargestConnectedComponent", "FillHoles",
    "RemoveSmallObjects", "LabelFilter", "MapLabelValue",
    "Compose",
)
#: networks of ``monai.networks.nets`` (segmentation, and DenseNet121 as a backbone; a
#: ``pretrained`` one still needs trust, see :mod:`.trust`)
NETWORKS = ("UNet", "Unet", "BasicUNet", "BasicUNetPlusPlus", "AttentionUnet", "DynUNet",
            "SegResNet", "SegResNetDS", "SwinUNETR", "UNETR", "VNet", "HighResNet",
            "DenseNet121")
#: inferers of ``monai.inferers``
INFERERS = ("SimpleInferer", "SlidingWindowInferer", "SlidingWindowInfererAdapt")
#: image readers of ``monai.data`` (a ``LoadImage(d)`` ``reader``): the two that read the
#: NIfTI medseg hands the bundle (not ``NumpyReader``, whose options can unpickle)
READERS = ("NibabelReader", "ITKReader")
#: layers of ``torch.nn``
TORCH_LAYERS = ("Identity", "ReLU", "LeakyReLU", "PReLU", "GELU", "Sigmoid", "Softmax", "Tanh",
                "Dropout", "Dropout2d", "Dropout3d")
#: the writers, named only so that they can be recognised and dropped
WRITERS = ("SaveImage",)
_DICT_SUFFIXES = ("", "d", "D", "Dict")


def _listed(module: Any, names: tuple[str, ...], variants: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in names:
        for suffix in _DICT_SUFFIXES if variants else ("",):
            obj = vars(module).get(name + suffix)
            if obj is not None:
                found[name + suffix] = obj
    return found


@functools.lru_cache(maxsize=1)
def _tables() -> dict[str, dict[str, Any]]:
    """Bare name -> object, per kind (imports MONAI's packages once; nothing of a bundle)."""
    import monai.data
    import monai.inferers
    import monai.networks.nets
    import monai.transforms
    import torch

    readers = _listed(monai.data, READERS)
    # LoadImage also accepts its registry keys ("nibabelreader"); they name the same classes
    readers.update({name.lower(): obj for name, obj in readers.items()})
    components = {
        **_listed(monai.transforms, TRANSFORMS, variants=True),
        **_listed(monai.networks.nets, NETWORKS),
        **_listed(monai.inferers, INFERERS),
        **_listed(monai.data, READERS),
    }
    values = {f"torch.{name}": obj for name, obj in vars(torch).items()
              if isinstance(obj, torch.dtype)}
    return {"component": components, "reader": readers,
            "writer": _listed(monai.transforms, WRITERS, variants=True),
            "torch_layer": _listed(torch.nn, TORCH_LAYERS), "value": values}


@functools.lru_cache(maxsize=1)
def _allowed_ids() -> dict[str, frozenset[int]]:
    tables = _tables()
    import numpy as np

    dtypes = {id(obj) for obj in tables["value"].values()}
    dtypes |= {id(obj) for obj in vars(np).values()
               if isinstance(obj, type) and issubclass(obj, np.generic)}
    components = {id(obj) for obj in tables["component"].values()}
    components |= {id(obj) for obj in tables["torch_layer"].values()}
    return {"component": frozenset(components),
            "reader": frozenset(id(obj) for obj in tables["reader"].values()),
            "writer": frozenset(id(obj) for obj in tables["writer"].values()),
            "value": frozenset(dtypes)}


def _loaded_attribute(name: str) -> Any:
    """``C`` of ``"a.b.C"`` when module ``a.b`` is loaded and defines or imports ``C``; no
    import, no ``getattr`` (so no module ``__getattr__`` hook runs)."""
    module_name, _, attr = name.rpartition(".")
    module = sys.modules.get(module_name)
    if module is None or not attr:
        return None
    return vars(module).get(attr)


def resolve(name: Any, kind: str = "component") -> Any:
    """The listed object that ``name`` stands for as a ``kind`` (``component``: a
    ``_target_``; ``reader``; ``writer``; ``value``: a data type such as ``torch.float32``),
    or None when it is not on the allow-list."""
    if not isinstance(name, str) or not name:
        return None
    ids = _allowed_ids().get(kind)
    if ids is None:
        return None
    if "." in name:
        obj = _loaded_attribute(name)
    else:
        obj = _tables()[kind].get(name) if kind in ("component", "reader", "writer") else None
    return obj if obj is not None and id(obj) in ids else None


def is_writer(name: Any) -> bool:
    """Whether ``name`` (a ``_target_``) resolves to one of MONAI's ``SaveImage`` transforms."""
    return resolve(name, "writer") is not None
