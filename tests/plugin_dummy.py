"""A dummy plugin implementing every hook of :mod:`medseg.hookspecs` (see test_plugin_hooks).

Register it on a fresh manager: ``get_plugin_manager(plugins=[plugin_dummy])``; its plugin
name is then ``tests.plugin_dummy``. The architecture ``dummy_net`` can be told to fail on
purpose (``fail="build" | "forward" | "shape"``), and the postprocessors ``dummy_raise`` and
``dummy_bad_shape`` misbehave, so call-time failure reporting can be tested.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from medseg.errors import InputError
from medseg.hookspecs import hookimpl
from medseg.models.base import ModelInfo, Prediction
from medseg.specs import (
    ArchitectureSpec,
    LossSpec,
    MetricSpec,
    ModelFormatSpec,
    PostprocessorSpec,
    ReaderSpec,
)
from medseg.volume import Volume

MAGIC = b"DUMMYVOL"


class DummyNet(torch.nn.Module):
    """One 3x3(x3) convolution; ``fail`` makes it misbehave on purpose."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 fail: str | None = None) -> None:
        super().__init__()
        if fail == "build":
            raise ValueError("dummy refuses to build")
        conv = torch.nn.Conv3d if spatial_dims == 3 else torch.nn.Conv2d
        self.conv = conv(in_channels, out_channels, 3, padding=1)
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail == "forward":
            raise RuntimeError("dummy forward exploded")
        out = self.conv(x)
        return out[:, :, ::2] if self.fail == "shape" else out


def dummy_net(*, spatial_dims: int, in_channels: int, out_channels: int,
              fail: str | None = None) -> torch.nn.Module:
    return DummyNet(spatial_dims, in_channels, out_channels, fail)


class MeanSquared:
    """Mean squared error between softmax probabilities and the one-hot target
    (``fail="call"`` makes it raise)."""

    def __init__(self, num_classes: int, fail: str | None = None) -> None:
        self.num_classes = num_classes
        self.fail = fail

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.fail == "call":
            raise RuntimeError("dummy loss exploded")
        onehot = torch.nn.functional.one_hot(target[:, 0].long(), self.num_classes)
        onehot = onehot.movedim(-1, 1).float()
        return ((torch.softmax(logits, 1) - onehot) ** 2).mean()


def invert(labels: np.ndarray, *, spacing, classes=None, value: int = 1) -> np.ndarray:
    """Swap background and ``value`` (a pure function, same shape and dtype)."""
    out = labels.copy()
    out[labels == 0] = value
    out[labels == value] = 0
    return out


def raising(labels: np.ndarray, *, spacing, classes=None) -> np.ndarray:
    raise RuntimeError("dummy postprocessor exploded")


def bad_shape(labels: np.ndarray, *, spacing, classes=None) -> np.ndarray:
    return labels[:1]


def sniff(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read(path: Path, **options) -> Volume:
    """``MAGIC``, then 3 little-endian uint16 (shape) and float32 voxels, 1 mm, origin 0."""
    raw = Path(path).read_bytes()
    if not raw.startswith(MAGIC):
        raise InputError(path, "not a dummy volume")
    shape = tuple(int(s) for s in np.frombuffer(raw[8:14], dtype="<u2"))
    data = np.frombuffer(raw[14:], dtype="<f4").reshape(shape)
    return Volume.from_spatial(data.copy(), np.eye(4))


def write(path: Path, data: np.ndarray) -> None:
    Path(path).write_bytes(MAGIC + np.asarray(data.shape, dtype="<u2").tobytes()
                           + np.asarray(data, dtype="<f4").tobytes())


def voxel_difference(pred: np.ndarray, ref: np.ndarray, spacing) -> float:
    """Volume difference in mm^3 (prediction minus reference)."""
    return float((int(pred.sum()) - int(ref.sum())) * np.prod(spacing))


@hookimpl
def medseg_register_architectures() -> list[ArchitectureSpec]:
    return [ArchitectureSpec("dummy_net", dummy_net, "one convolution (tests)", size_divisor=1)]


@hookimpl
def medseg_register_losses() -> list[LossSpec]:
    return [LossSpec("dummy_mse", MeanSquared, "mean squared error on probabilities (tests)")]


@hookimpl
def medseg_register_postprocessors() -> list[PostprocessorSpec]:
    return [
        PostprocessorSpec("dummy_invert", invert, "swap background and a class", {"value": 1}),
        PostprocessorSpec("dummy_raise", raising, "always raises (tests)"),
        PostprocessorSpec("dummy_bad_shape", bad_shape, "returns the wrong shape (tests)"),
    ]


@hookimpl
def medseg_register_readers() -> list[ReaderSpec]:
    return [ReaderSpec("dummy", sniff, read, "dummy volume format (tests)", (".dummy",), 100)]


@hookimpl
def medseg_register_metrics() -> list[MetricSpec]:
    return [MetricSpec("dummy_volume_difference", voxel_difference,
                       "predicted minus reference volume", higher_is_better=False, unit="mm3")]


# ---- a model format: a folder with threshold.json is a (network-free) threshold model ----
THRESHOLD_FILE = "threshold.json"


def sniff_threshold_model(path: Path) -> bool:
    return (Path(path) / THRESHOLD_FILE).is_file()


def describe_threshold_model(path: Path) -> ModelInfo:
    try:
        cfg = json.loads((Path(path) / THRESHOLD_FILE).read_text())
        threshold = float(cfg["threshold"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(Path(path) / THRESHOLD_FILE, f"not a threshold model ({exc})") from None
    return ModelInfo(name=Path(path).name, format="dummy_threshold",
                     labels={"background": 0, str(cfg.get("name", "bright")): 1},
                     source=str(path), details={"threshold": threshold})


class ThresholdModel:
    """Voxels above the threshold are class 1; the model grid is the input grid."""

    def __init__(self, info: ModelInfo) -> None:
        self.info = info

    def prepare(self, volume: Volume, settings) -> torch.Tensor:
        return torch.from_numpy(np.asarray(volume.array[0], dtype=np.float32))

    def predict(self, prepared: torch.Tensor, settings) -> torch.Tensor:
        fg = (prepared > self.info.details["threshold"]).float()
        return torch.stack([1 - fg, fg])

    def restore(self, prepared, probabilities: torch.Tensor, settings) -> Prediction:
        probs = probabilities.numpy() if settings.probabilities else None
        return Prediction(probabilities.argmax(0).numpy().astype(np.uint8), probs)


def load_threshold_model(path: Path, *, registry=None, device=None, **options) -> ThresholdModel:
    return ThresholdModel(describe_threshold_model(path))


@hookimpl
def medseg_register_model_formats() -> list[ModelFormatSpec]:
    return [ModelFormatSpec("dummy_threshold", sniff_threshold_model, load_threshold_model,
                            describe_threshold_model, "threshold.json folder (tests)",
                            priority=100)]
