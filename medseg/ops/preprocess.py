"""Preprocessing shared by training and inference: orientation, spacing, intensity.

The recipe is recorded in a model bundle so inference repeats exactly what training did.

* Orientation: the voxel axes are permuted/flipped to the closest RAS+ order (exact, no
  interpolation); the inverse is applied to the prediction.
* Spacing: the canonical grid is resampled to ``target_spacing`` so that the new grid covers
  exactly the same extent (voxel edges coincide); with ``align_corners=False`` semantics the
  mapping ``u = (i + 0.5) * n_src / n_dst - 0.5`` is exact in both directions.
* Intensity: ``ct`` clips to a window learnt from the training foreground and z-scores with
  the foreground mean/std (nnU-Net's CT scheme); ``zscore`` normalises each image with the
  mean/std of its non-zero voxels (MRI); ``percentile`` maps the ``lower`` and ``upper``
  percentiles of the whole image (zeros included) to 0 and 1 and clips to ``clip``. The last
  one commutes with any positive scaling plus offset of the scanner's values, and gives an
  exactly-zero (skull-stripped) background the same value, 0, as the dark air of an unstripped
  scan, where a non-zero z-score would put that background at the tissue mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from medseg.errors import MedsegError
from medseg.volume import Volume


@dataclass(frozen=True)
class Preprocessing:
    target_spacing: tuple[float, ...] | None = None
    intensity: dict[str, Any] = field(default_factory=lambda: {"scheme": "zscore"})
    orientation: str = "RAS"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_spacing"] = list(self.target_spacing) if self.target_spacing else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        ts = d.get("target_spacing")
        return cls(target_spacing=tuple(float(s) for s in ts) if ts else None,
                   intensity=dict(d.get("intensity") or {"scheme": "zscore"}),
                   orientation=str(d.get("orientation", "RAS")))


# ---- orientation ----------------------------------------------------------------------
def canonical_transform(volume: Volume) -> np.ndarray | None:
    """The nibabel orientation transform from the volume's axes to RAS (None for 2D)."""
    if volume.spatial_ndim != 3:
        return None
    ornt = nib.orientations.io_orientation(volume.affine)
    return nib.orientations.ornt_transform(ornt, nib.orientations.axcodes2ornt("RAS"))


def reorient_array(array: np.ndarray, transform: np.ndarray | None) -> np.ndarray:
    """Apply an orientation transform to a channel-first array (C, X, Y, Z)."""
    if transform is None:
        return array
    return np.stack([nib.orientations.apply_orientation(a, transform) for a in array])


def inverse_transform(transform: np.ndarray | None) -> np.ndarray | None:
    if transform is None:
        return None
    inv = np.zeros_like(transform)
    for src_axis, (dst_axis, flip) in enumerate(transform):
        inv[int(dst_axis)] = (src_axis, flip)
    return inv


def canonical_affine(volume: Volume, transform: np.ndarray | None) -> np.ndarray:
    if transform is None:
        return np.asarray(volume.affine)
    return volume.affine @ nib.orientations.inv_ornt_aff(transform, volume.spatial_shape)


# ---- spacing --------------------------------------------------------------------------
def target_shape(shape: Sequence[int], spacing: Sequence[float],
                 target: Sequence[float] | None) -> tuple[int, ...]:
    if target is None:
        return tuple(int(s) for s in shape)
    return tuple(max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target,
                                                                  strict=True))


def resize(tensor: torch.Tensor, shape: Sequence[int], *, labels: bool = False) -> torch.Tensor:
    """Resize a ``C, *spatial`` tensor to ``shape`` (linear, or nearest for labels)."""
    if tuple(tensor.shape[1:]) == tuple(shape):
        return tensor
    mode = "nearest-exact" if labels else ("trilinear" if len(shape) == 3 else "bilinear")
    src = tensor[None].float() if labels else tensor[None]
    kw = {} if labels else {"align_corners": False}
    out = F.interpolate(src, size=tuple(int(s) for s in shape), mode=mode, **kw)[0]
    return out.to(tensor.dtype) if labels else out


# ---- intensity ------------------------------------------------------------------------
def ct_statistics(foreground_values: np.ndarray) -> dict[str, Any]:
    """nnU-Net CT normalisation parameters from training foreground intensities."""
    lo, hi = np.percentile(foreground_values, [0.5, 99.5])
    clipped = np.clip(foreground_values, lo, hi)
    return {"scheme": "ct", "clip": [float(lo), float(hi)],
            "mean": float(clipped.mean()), "std": float(max(clipped.std(), 1e-6))}


def percentile_scheme(lower: float = 0.5, upper: float = 99.5,
                      clip: Sequence[float] = (-0.5, 2.0)) -> dict[str, Any]:
    """Parameters of the ``percentile`` scheme, as recorded in a bundle."""
    return {"scheme": "percentile", "lower": float(lower), "upper": float(upper),
            "clip": [float(clip[0]), float(clip[1])]}


#: percentiles are taken on at most this many voxels (an even stride through the image)
PERCENTILE_SAMPLE = 2_000_000


def _percentile_minmax(x: torch.Tensor, intensity: dict[str, Any]) -> torch.Tensor:
    out = torch.empty_like(x)
    for c in range(x.shape[0]):
        flat = x[c].flatten()
        step = max(1, flat.numel() // PERCENTILE_SAMPLE)
        lo, hi = np.percentile(flat[::step].numpy(), [intensity.get("lower", 0.5),
                                                      intensity.get("upper", 99.5)])
        out[c] = (x[c] - float(lo)) / max(float(hi - lo), 1e-6)
    clip = intensity.get("clip")
    return out.clamp(float(clip[0]), float(clip[1])) if clip else out


def normalize(array: torch.Tensor, intensity: dict[str, Any]) -> torch.Tensor:
    scheme = intensity.get("scheme", "zscore")
    x = array.float()
    if scheme == "percentile":
        return _percentile_minmax(x, intensity)
    if scheme == "ct":
        lo, hi = intensity["clip"]
        return (x.clamp(lo, hi) - intensity["mean"]) / intensity["std"]
    if scheme == "zscore":
        out = torch.empty_like(x)
        for c in range(x.shape[0]):
            mask = x[c] != 0
            vals = x[c][mask] if bool(mask.any()) else x[c].flatten()
            mean, std = vals.mean(), vals.std().clamp_min(1e-6)
            out[c] = (x[c] - mean) / std
            if intensity.get("nonzero", True):
                out[c][~mask] = 0
        return out
    if scheme == "none":
        return x
    raise MedsegError(f"unknown intensity scheme {scheme!r} in the model bundle")


@dataclass
class Prepared:
    """An image on the model grid plus what is needed to map a prediction back."""

    image: torch.Tensor  # C, *model_grid (float32)
    transform: np.ndarray | None
    canonical_shape: tuple[int, ...]
    model_affine: np.ndarray


def prepare(volume: Volume, pre: Preprocessing, *, normalise: bool = True) -> Prepared:
    transform = canonical_transform(volume)
    arr = reorient_array(volume.array, transform)
    can_affine = canonical_affine(volume, transform)
    spacing = np.linalg.norm(can_affine[:3, : volume.spatial_ndim], axis=0)
    target = pre.target_spacing
    if target is not None and len(target) != volume.spatial_ndim:
        raise MedsegError(f"model expects {len(target)}D images, got a "
                          f"{volume.spatial_ndim}D image")
    shape = target_shape(arr.shape[1:], spacing, target)
    tensor = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if normalise:
        tensor = normalize(tensor, pre.intensity)
    tensor = resize(tensor, shape)
    scale = np.ones(4)
    scale[: volume.spatial_ndim] = np.array(arr.shape[1:]) / np.array(shape)
    model_affine = can_affine @ _grid_change(scale)
    return Prepared(tensor, transform, tuple(int(s) for s in arr.shape[1:]), model_affine)


def prepare_labels(labels: np.ndarray, prepared: Prepared) -> torch.Tensor:
    """Bring a ``1, *spatial`` label array onto the same model grid as :func:`prepare`."""
    arr = reorient_array(labels, prepared.transform)
    return resize(torch.from_numpy(np.ascontiguousarray(arr)), prepared.image.shape[1:],
                  labels=True)


def _grid_change(scale: np.ndarray) -> np.ndarray:
    """Affine from new voxel indices to old ones for an extent-preserving resize."""
    m = np.diag(scale)
    m[:3, 3] = 0.5 * (scale[:3] - 1)
    m[3, 3] = 1
    return m
