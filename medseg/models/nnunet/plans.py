"""nnU-Net v2 ``plans.json`` and ``dataset.json`` read into typed, validated objects.

Both plans layouts are understood:

* the current one, where each configuration holds ``architecture: {network_class_name,
  arch_kwargs, _kw_requires_import}``;
* the older one that TotalSegmentator's models use, where a configuration names
  ``UNet_class_name``, ``UNet_base_num_features``, ``unet_max_num_features``,
  ``n_conv_per_stage_encoder``/``_decoder``, ``conv_kernel_sizes`` and ``pool_op_kernel_sizes``;
  it is converted to the current layout the way nnU-Net's own ``ConfigurationManager`` does.

Configurations may inherit from one another (``inherits_from``). Everything here is data:
class and function names are kept as strings and looked up in allow-lists elsewhere
(:mod:`medseg.models.nnunet.network`, :mod:`medseg.models.nnunet.resampling`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.io.json_file import read_json

PLANS_FILE = "plans.json"
DATASET_FILE = "dataset.json"
#: nnU-Net's ANISO_THRESHOLD: a spacing ratio above this resamples the low-res axis apart
DEFAULT_ANISOTROPY_THRESHOLD = 3.0


# ---- small typed pieces ------------------------------------------------------------------
@dataclass(frozen=True)
class ResamplingSpec:
    """One of nnU-Net's resampling functions with its keyword arguments (from the plans)."""

    function: str
    order: int = 3
    order_z: int = 0
    #: None: decide from the spacings (nnU-Net's default), True/False: forced
    force_separate_z: bool | None = None
    anisotropy_threshold: float = DEFAULT_ANISOTROPY_THRESHOLD
    #: for ``resample_torch_fornnunet``: in-plane mode and the mode along the low-res axis
    mode: str = "linear"
    aniso_axis_mode: str = "nearest-exact"


@dataclass(frozen=True)
class ArchitectureSpec:
    """The network named by the plans: a class name plus its keyword arguments."""

    class_name: str
    kwargs: Mapping[str, Any]
    requires_import: tuple[str, ...]

    @property
    def short_name(self) -> str:
        return self.class_name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class ChannelIntensity:
    """``foreground_intensity_properties_per_channel`` of one input channel."""

    min: float
    max: float
    mean: float
    std: float
    p00_5: float
    p99_5: float

    def to_dict(self) -> dict[str, float]:
        return {"min": self.min, "max": self.max, "mean": self.mean, "std": self.std,
                "p00_5": self.p00_5, "p99_5": self.p99_5}


@dataclass(frozen=True)
class Configuration:
    """One resolved configuration (``3d_fullres``, ``2d``, ...), axes in nnU-Net's order
    (after ``transpose_forward``)."""

    name: str
    patch_size: tuple[int, ...]
    spacing: tuple[float, ...]
    normalization_schemes: tuple[str, ...]
    use_mask_for_norm: tuple[bool, ...]
    resampling_data: ResamplingSpec
    resampling_probabilities: ResamplingSpec
    architecture: ArchitectureSpec
    previous_stage: str | None = None
    #: "current" or "old" (converted from the UNet_class_name layout)
    plans_layout: str = "current"


@dataclass(frozen=True)
class Plans:
    path: Path
    plans_name: str
    dataset_name: str
    transpose_forward: tuple[int, ...]
    transpose_backward: tuple[int, ...]
    #: nnU-Net's reader class name (decides whether the image is reoriented first)
    image_reader_writer: str
    #: by channel index; None where the plans hold no statistics for that channel
    intensity: Mapping[int, ChannelIntensity]
    label_manager: str
    configurations: Mapping[str, Mapping[str, Any]] = field(repr=False)

    @property
    def configuration_names(self) -> list[str]:
        return list(self.configurations)

    def configuration(self, name: str) -> Configuration:
        """The named configuration with inheritance resolved, validated."""
        if name not in self.configurations:
            raise InputError(self.path, f"has no configuration {name!r} (it has: "
                                        f"{', '.join(self.configurations) or 'none'})")
        return _configuration(self.path, name, _resolve(self.path, self.configurations, name))


@dataclass(frozen=True)
class DatasetInfo:
    path: Path
    name: str
    channel_names: tuple[str, ...]
    #: class name -> label value, background included, ``ignore`` left out
    labels: Mapping[str, int]
    file_ending: str


# ---- readers -----------------------------------------------------------------------------
def read_plans(path: str | Path) -> Plans:
    path = Path(path)
    data = read_json(path)
    configs = data.get("configurations")
    if not isinstance(configs, dict) or not configs:
        raise InputError(path, "is not an nnU-Net plans file (no 'configurations')")
    for key, value in configs.items():
        if not isinstance(value, dict):
            raise InputError(path, f"configuration {key!r} is not a JSON object")
    tf = _permutation(path, data, "transpose_forward")
    tb = _permutation(path, data, "transpose_backward")
    if [tf[i] for i in tb] != list(range(len(tf))):
        raise InputError(path, f"transpose_backward {list(tb)} does not undo transpose_forward "
                               f"{list(tf)}")
    props = data.get("foreground_intensity_properties_per_channel",
                     data.get("foreground_intensity_properties_by_modality", {}))
    if not isinstance(props, dict):
        raise InputError(path, "foreground_intensity_properties_per_channel is not an object")
    intensity: dict[int, ChannelIntensity] = {}
    for key, value in props.items():
        if not (str(key).isdigit() and isinstance(value, dict)):
            raise InputError(path, f"foreground intensity properties of channel {key!r} are "
                                   "malformed")
        intensity[int(key)] = _channel_intensity(path, key, value)
    reader = data.get("image_reader_writer", "SimpleITKIO")
    return Plans(path=path, plans_name=str(data.get("plans_name", "")),
                 dataset_name=str(data.get("dataset_name", "")), transpose_forward=tf,
                 transpose_backward=tb, image_reader_writer=str(reader), intensity=intensity,
                 label_manager=str(data.get("label_manager", "LabelManager")),
                 configurations=configs)


def read_dataset(path: str | Path) -> DatasetInfo:
    path = Path(path)
    data = read_json(path)
    channels = data.get("channel_names", data.get("modality"))
    if not isinstance(channels, dict) or not channels:
        raise InputError(path, "has no 'channel_names' (the model's input channels)")
    if sorted(str(k) for k in channels) != [str(i) for i in range(len(channels))]:
        raise InputError(path, f"channel_names keys must be 0..{len(channels) - 1}, got "
                               f"{sorted(channels)}")
    names = tuple(str(channels[str(i)] if str(i) in channels else channels[i])
                  for i in range(len(channels)))
    raw = data.get("labels")
    if not isinstance(raw, dict) or not raw:
        raise InputError(path, "has no 'labels'")
    labels: dict[str, int] = {}
    for name, value in raw.items():
        if name == "ignore":
            continue
        if isinstance(value, (list, tuple)):
            if len(set(value)) > 1:
                raise InputError(path, f"is a region-based model (label {name!r} is the region "
                                       f"{list(value)}); medseg runs label-based nnU-Net models "
                                       "only")
            value = value[0] if value else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(path, f"label {name!r} has value {value!r}; expected an integer "
                                   ">= 0")
        labels[str(name)] = int(value)
    if "regions_class_order" in data and data["regions_class_order"] is not None:
        raise InputError(path, "is a region-based model (it has regions_class_order); medseg "
                               "runs label-based nnU-Net models only")
    if labels.get("background") != 0:
        raise InputError(path, "labels must declare 'background': 0")
    values = sorted(labels.values())
    if values != list(range(len(values))):
        raise InputError(path, f"label values must be 0..{len(values) - 1} without gaps or "
                               f"repeats, got {values}")
    return DatasetInfo(path=path, name=str(data.get("name", path.parent.name)),
                       channel_names=names, labels=labels,
                       file_ending=str(data.get("file_ending", ".nii.gz")))


# ---- helpers -----------------------------------------------------------------------------
def _permutation(path: Path, data: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = data.get(key)
    if not isinstance(value, list) or sorted(value) not in ([0, 1, 2], [0, 1]) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise InputError(path, f"{key} must be a permutation of the axes, got {value!r}")
    return tuple(int(v) for v in value)


def _number(path: Path, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            float(value)):
        raise InputError(path, f"{where} must be a finite number, got {value!r}")
    return float(value)


def _channel_intensity(path: Path, key: Any, value: Mapping[str, Any]) -> ChannelIntensity:
    def get(name: str) -> float:
        if name not in value:
            raise InputError(path, f"foreground intensity properties of channel {key} have no "
                                   f"{name!r}")
        return _number(path, f"channel {key} {name}", value[name])

    return ChannelIntensity(min=get("min"), max=get("max"), mean=get("mean"), std=get("std"),
                            p00_5=get("percentile_00_5"), p99_5=get("percentile_99_5"))


def _resolve(path: Path, configs: Mapping[str, Mapping[str, Any]], name: str,
             seen: tuple[str, ...] = ()) -> dict[str, Any]:
    if name in seen:
        raise InputError(path, f"configurations inherit in a circle: {' -> '.join((*seen, name))}")
    if name not in configs:
        raise InputError(path, f"configuration {seen[-1]!r} inherits from {name!r}, which does "
                               "not exist")
    config = dict(configs[name])
    parent = config.get("inherits_from")
    if parent is None:
        return config
    base = _resolve(path, configs, str(parent), (*seen, name))
    base.update(config)
    return base


def _int_list(path: Path, where: str, value: Any, length: int | None = None) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise InputError(path, f"{where} must be a list of positive integers, got {value!r}")
    if length is not None and len(value) != length:
        raise InputError(path, f"{where} must have {length} entries, got {value!r}")
    return tuple(int(v) for v in value)


def _resampling(path: Path, where: str, function: Any, kwargs: Any) -> ResamplingSpec:
    if not isinstance(function, str):
        raise InputError(path, f"{where} must name a resampling function, got {function!r}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise InputError(path, f"{where}_kwargs must be an object, got {kwargs!r}")
    order, order_z = kwargs.get("order", 3), kwargs.get("order_z", 0)
    for key, v in (("order", order), ("order_z", order_z)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 5:
            raise InputError(path, f"{where}_kwargs {key} must be an integer 0..5, got {v!r}")
    force = kwargs.get("force_separate_z")
    if force is not None and not isinstance(force, bool):
        raise InputError(path, f"{where}_kwargs force_separate_z must be true, false or null")
    threshold = _number(path, f"{where}_kwargs separate_z_anisotropy_threshold",
                        kwargs.get("separate_z_anisotropy_threshold",
                                   DEFAULT_ANISOTROPY_THRESHOLD))
    return ResamplingSpec(function=function, order=order, order_z=order_z,
                          force_separate_z=force, anisotropy_threshold=threshold,
                          mode=str(kwargs.get("mode", "linear")),
                          aniso_axis_mode=str(kwargs.get("aniso_axis_mode", "nearest-exact")))


#: the _kw_requires_import entries nnU-Net's old-layout conversion writes
_OLD_LAYOUT_IMPORTS = ("conv_op", "norm_op", "dropout_op", "nonlin")


def _architecture_from_old_layout(path: Path, name: str, c: Mapping[str, Any],
                                  dim: int) -> ArchitectureSpec:
    where = f"configuration {name!r}"
    cls = c.get("UNet_class_name")
    if cls not in ("PlainConvUNet", "ResidualEncoderUNet"):
        raise InputError(path, f"{where} names the architecture {cls!r}; the old plans layout "
                               "knows PlainConvUNet and ResidualEncoderUNet only")
    enc = _int_list(path, f"{where} n_conv_per_stage_encoder", c.get("n_conv_per_stage_encoder"))
    n_stages = len(enc)
    dec = _int_list(path, f"{where} n_conv_per_stage_decoder", c.get("n_conv_per_stage_decoder"),
                    n_stages - 1) if n_stages > 1 else ()
    base = _number(path, f"{where} UNet_base_num_features", c.get("UNet_base_num_features"))
    top = _number(path, f"{where} unet_max_num_features", c.get("unet_max_num_features"))
    kernels = c.get("conv_kernel_sizes")
    strides = c.get("pool_op_kernel_sizes")
    for key, value in (("conv_kernel_sizes", kernels), ("pool_op_kernel_sizes", strides)):
        if not isinstance(value, list) or len(value) != n_stages:
            raise InputError(path, f"{where} {key} must list {n_stages} stages, got {value!r}")
    blocks = "n_conv_per_stage" if cls == "PlainConvUNet" else "n_blocks_per_stage"
    conv = "torch.nn.modules.conv.Conv3d" if dim == 3 else "torch.nn.modules.conv.Conv2d"
    norm = ("torch.nn.modules.instancenorm.InstanceNorm3d" if dim == 3
            else "torch.nn.modules.instancenorm.InstanceNorm2d")
    kwargs = {
        "n_stages": n_stages,
        "features_per_stage": [int(min(base * 2 ** i, top)) for i in range(n_stages)],
        "conv_op": conv, "kernel_sizes": kernels, "strides": strides, blocks: list(enc),
        "n_conv_per_stage_decoder": list(dec), "conv_bias": True, "norm_op": norm,
        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
        "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    return ArchitectureSpec(class_name=str(cls), kwargs=kwargs,
                            requires_import=_OLD_LAYOUT_IMPORTS)


def _configuration(path: Path, name: str, c: Mapping[str, Any]) -> Configuration:
    where = f"configuration {name!r}"
    patch = _int_list(path, f"{where} patch_size", c.get("patch_size"))
    if len(patch) not in (2, 3):
        raise InputError(path, f"{where} patch_size must have 2 or 3 entries, got {list(patch)}")
    spacing_raw = c.get("spacing")
    if not isinstance(spacing_raw, list) or len(spacing_raw) != len(patch):
        raise InputError(path, f"{where} spacing must have {len(patch)} entries, got "
                               f"{spacing_raw!r}")
    spacing = tuple(_number(path, f"{where} spacing", s) for s in spacing_raw)
    if any(s <= 0 for s in spacing):
        raise InputError(path, f"{where} spacing must be positive, got {list(spacing)}")
    schemes = c.get("normalization_schemes")
    if not isinstance(schemes, list) or not schemes or not all(isinstance(s, str)
                                                               for s in schemes):
        raise InputError(path, f"{where} normalization_schemes must be a list of names")
    masks = c.get("use_mask_for_norm", [False] * len(schemes))
    if not isinstance(masks, list) or len(masks) != len(schemes) or not all(
            isinstance(m, bool) for m in masks):
        raise InputError(path, f"{where} use_mask_for_norm must list one true/false per channel")
    if "architecture" in c:
        arch = c["architecture"]
        if not isinstance(arch, dict) or not isinstance(arch.get("network_class_name"), str) \
                or not isinstance(arch.get("arch_kwargs"), dict):
            raise InputError(path, f"{where} architecture needs network_class_name and "
                                   "arch_kwargs")
        imports = arch.get("_kw_requires_import", [])
        if not isinstance(imports, list) or not all(isinstance(k, str) for k in imports):
            raise InputError(path, f"{where} architecture _kw_requires_import must list names")
        architecture = ArchitectureSpec(class_name=arch["network_class_name"],
                                        kwargs=dict(arch["arch_kwargs"]),
                                        requires_import=tuple(imports))
        layout = "current"
    elif "UNet_class_name" in c:
        architecture = _architecture_from_old_layout(path, name, c, len(patch))
        layout = "old"
    else:
        raise InputError(path, f"{where} names no network (neither 'architecture' nor "
                               "'UNet_class_name')")
    previous = c.get("previous_stage")
    return Configuration(
        name=name, patch_size=patch, spacing=spacing, normalization_schemes=tuple(schemes),
        use_mask_for_norm=tuple(masks),
        resampling_data=_resampling(path, f"{where} resampling_fn_data",
                                    c.get("resampling_fn_data", "resample_data_or_seg_to_shape"),
                                    c.get("resampling_fn_data_kwargs",
                                          {"order": 3, "order_z": 0})),
        resampling_probabilities=_resampling(
            path, f"{where} resampling_fn_probabilities",
            c.get("resampling_fn_probabilities", "resample_data_or_seg_to_shape"),
            c.get("resampling_fn_probabilities_kwargs", {"order": 1, "order_z": 0})),
        architecture=architecture,
        previous_stage=str(previous) if previous is not None else None, plans_layout=layout)
