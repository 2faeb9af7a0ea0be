"""Where a MONAI bundle (model-zoo layout) keeps its files, and what its metadata says.

A bundle folder holds ``configs/metadata.json``, ``configs/inference.json`` (or ``.yaml``/
``.yml``) and ``models/model.pt`` (a state dict) or ``models/model.ts`` (TorchScript). This
module only reads those files as data: no ``$`` expression is evaluated and no component is
instantiated (YAML with its aliases bounded, :mod:`.yaml_data`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.models.base import ModelInfo
from medseg.models.monai_bundle.yaml_data import YamlLimitError, load_yaml_data

FORMAT = "monai_bundle"
METADATA = Path("configs") / "metadata.json"
INFERENCE_NAMES = ("inference.json", "inference.yaml", "inference.yml")
WEIGHT_NAMES = ("model.pt", "model.ts")
#: a bundle config larger than this is refused before parsing
MAX_CONFIG_BYTES = 8 * 1024**2


@dataclass(frozen=True)
class BundleLayout:
    """The files of one bundle folder."""

    root: Path
    metadata: Path
    inference: Path
    #: ``models/model.pt`` when present, else ``models/model.ts``
    weights: Path

    @property
    def torchscript(self) -> bool:
        return self.weights.suffix == ".ts"


def _inference_config(root: Path) -> Path | None:
    for name in INFERENCE_NAMES:
        if (root / "configs" / name).is_file():
            return root / "configs" / name
    return None


def _weights(root: Path) -> Path | None:
    for name in WEIGHT_NAMES:
        if (root / "models" / name).is_file():
            return root / "models" / name
    return None


def sniff_monai_bundle(path: Path) -> bool:
    """A folder with a ``configs/`` folder holding the metadata or an inference config (a
    bundle missing one of its files is still recognised, so that :func:`find_layout` can say
    which file is missing)."""
    root = Path(path)
    if not (root / "configs").is_dir():
        return False
    return (root / METADATA).is_file() or _inference_config(root) is not None


def find_layout(path: Path, need_weights: bool = True) -> BundleLayout:
    """The bundle's files; a missing one is a one-line :class:`InputError` naming it (the
    weights only with ``need_weights``; without them ``weights`` is the expected path)."""
    root = Path(path)
    if not (root / METADATA).is_file():
        raise InputError(root / METADATA, "MONAI bundle metadata is missing")
    inference = _inference_config(root)
    if inference is None:
        raise InputError(root / "configs" / INFERENCE_NAMES[0],
                         "MONAI bundle inference config is missing (inference.json or .yaml)")
    weights = _weights(root)
    if weights is None and not need_weights:
        weights = root / "models" / WEIGHT_NAMES[0]
    if weights is None:
        raise InputError(root / "models" / WEIGHT_NAMES[0],
                         "MONAI bundle weights are missing (models/model.pt or models/model.ts)")
    return BundleLayout(root, root / METADATA, inference, weights)


def read_config(path: Path) -> dict[str, Any]:
    """A bundle config file as plain data (JSON or YAML, safe loaders only)."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise InputError(path, f"config is {size} bytes, more than the limit {MAX_CONFIG_BYTES}")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            try:
                data = load_yaml_data(text)
            except YamlLimitError as exc:
                raise InputError(path, f"config refused: {exc}") from None
        else:
            data = json.loads(text)
    except RecursionError:
        raise InputError(path, "corrupt config (nested too deeply)") from None
    except InputError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(path, f"corrupt config ({first[:200]})") from None
    if not isinstance(data, dict):
        raise InputError(path, "config must be a JSON/YAML object")
    return data


def walk(config: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``(id, value)`` in a nested config, ids joined with ``#`` as MONAI writes them."""
    if isinstance(config, dict):
        for key, value in config.items():
            sub = f"{where}#{key}" if where else str(key)
            yield sub, value
            yield from walk(value, sub)
    elif isinstance(config, list):
        for i, value in enumerate(config):
            sub = f"{where}#{i}" if where else str(i)
            yield sub, value
            yield from walk(value, sub)


def _target_name(item: Any) -> str:
    target = item.get("_target_") if isinstance(item, dict) else None
    return target.rsplit(".", 1)[-1] if isinstance(target, str) else ""


def _literal_numbers(value: Any) -> tuple[float, ...] | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)
    if (isinstance(value, list) and value
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        return tuple(float(v) for v in value)
    return None


def stated_spacing(config: dict[str, Any]) -> tuple[float, ...] | None:
    """``pixdim`` of the first Spacing(d) transform, when the config states it literally."""
    for _, item in walk(config.get("preprocessing", {})):
        if _target_name(item) in ("Spacingd", "Spacing"):
            return _literal_numbers(item.get("pixdim"))
    return None


def stated_patch_size(config: dict[str, Any]) -> tuple[int, ...] | None:
    """``roi_size`` of the inferer, when the config states it literally."""
    inferer = config.get("inferer")
    if isinstance(inferer, dict):
        roi = _literal_numbers(inferer.get("roi_size"))
        if roi is not None:
            return tuple(int(r) for r in roi)
    return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _network_format(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``network_data_format`` ``inputs.image`` and ``outputs.pred`` (or the first entry)."""
    fmt = _mapping(meta.get("network_data_format"))
    inputs, outputs = _mapping(fmt.get("inputs")), _mapping(fmt.get("outputs"))
    image: Any = inputs.get("image") or next(iter(inputs.values()), {})
    pred: Any = outputs.get("pred") or next(iter(outputs.values()), {})
    return _mapping(image), _mapping(pred)


def labels_from_metadata(meta: dict[str, Any], where: Path) -> dict[str, int]:
    """Class name -> output channel from ``network_data_format.outputs.pred.channel_def``;
    channel 0 is called ``background``."""
    _, pred = _network_format(meta)
    channel_def = pred.get("channel_def")
    if not isinstance(channel_def, dict) or not channel_def:
        n = pred.get("num_channels")
        if isinstance(n, int) and n > 1:
            channel_def = {str(i): f"class_{i}" for i in range(n)}
        else:
            raise InputError(where, "metadata has no network_data_format outputs pred "
                                    "channel_def (the class of each output channel)")
    labels: dict[str, int] = {}
    for key, name in channel_def.items():
        try:
            value = int(key)
        except (TypeError, ValueError):
            raise InputError(where, f"channel_def key {key!r} is not a channel number") from None
        labels["background" if value == 0 else str(name)] = value
    values = sorted(labels.values())
    if values != list(range(len(values))) or len(labels) != len(channel_def):
        raise InputError(where, f"channel_def must name channels 0..{len(channel_def) - 1} "
                                f"with distinct names, got {dict(channel_def)}")
    return labels


def bundle_info(layout: BundleLayout, meta: dict[str, Any], config: dict[str, Any],
                details: dict[str, Any] | None = None) -> ModelInfo:
    image, _ = _network_format(meta)
    labels = labels_from_metadata(meta, layout.metadata)
    channels = image.get("num_channels", 1)
    shape = image.get("spatial_shape")
    spatial_dims = len(shape) if isinstance(shape, list) and len(shape) in (2, 3) else 3
    net = config.get("network_def")
    if isinstance(net, dict) and isinstance(net.get("spatial_dims"), int):
        spatial_dims = int(net["spatial_dims"])
    spacing = stated_spacing(config)
    if spacing is not None and len(spacing) == 1:
        spacing = spacing * spatial_dims
    version = meta.get("version")
    channel_def = _mapping(image.get("channel_def"))
    return ModelInfo(
        name=str(meta.get("name") or layout.root.name), format=FORMAT, labels=labels,
        spatial_dims=spatial_dims, in_channels=int(channels) if isinstance(channels, int) else 1,
        spacing=spacing, patch_size=stated_patch_size(config),
        modality=str(image["modality"]) if isinstance(image.get("modality"), str) else None,
        channel_names=tuple(str(v) for _, v in sorted(channel_def.items())),
        source=f"{layout.root} (MONAI bundle {version})" if version else str(layout.root),
        details={"version": version, "config": str(layout.inference.relative_to(layout.root)),
                 "weights": str(layout.weights.relative_to(layout.root)),
                 "monai_version": meta.get("monai_version"), **(details or {})},
    )

