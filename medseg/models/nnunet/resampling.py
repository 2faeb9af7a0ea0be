"""nnU-Net's resampling, reproduced from what its plans name.

All arrays are in nnU-Net's axis order (after ``transpose_forward``), channel first.

Functions a plans file may name (``resampling_fn_data`` / ``resampling_fn_probabilities``):

* ``resample_data_or_seg_to_shape`` (the default planners): scikit-image ``resize`` semantics,
  i.e. ``scipy.ndimage.zoom(order, mode="nearest", grid_mode=True)`` with the output clipped to
  the input's range. When the spacing is anisotropic (ratio above the threshold, or
  ``force_separate_z``) the in-plane axes are resampled slice by slice with ``order`` and the
  low-resolution axis apart with ``order_z`` (``map_coordinates``, half-pixel-centred).
* ``resample_torch_fornnunet``: ``torch.nn.functional.interpolate`` (trilinear, or bilinear in
  plane and ``nearest-exact`` along the low-resolution axis).
* ``no_resampling_hack``: the data stays as it is.

For probabilities (one class at a time, :func:`resample_channel`) the linear cases run through
``torch.nn.functional.interpolate``, which samples exactly where ``zoom(order=1,
grid_mode=True, mode="nearest")`` does, in float32 and without a float64 copy of every class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from medseg.errors import InputError
from medseg.models.nnunet.plans import ResamplingSpec

SCIPY_FUNCTIONS = ("resample_data_or_seg_to_shape", "resample_data_or_seg_to_spacing")
TORCH_FUNCTIONS = ("resample_torch_fornnunet",)
IDENTITY_FUNCTIONS = ("no_resampling_hack",)
SUPPORTED = SCIPY_FUNCTIONS + TORCH_FUNCTIONS + IDENTITY_FUNCTIONS


def check_supported(spec: ResamplingSpec, where: object) -> None:
    if spec.function not in SUPPORTED:
        raise InputError(str(where), f"resampling function {spec.function!r} is not supported "
                                     f"(supported: {', '.join(SUPPORTED)})")
    if spec.function in TORCH_FUNCTIONS and (spec.mode != "linear" or spec.aniso_axis_mode
                                             not in ("nearest-exact", "nearest", "linear")):
        raise InputError(str(where), f"resample_torch_fornnunet with mode {spec.mode!r} / "
                                     f"{spec.aniso_axis_mode!r} is not supported")


def new_shape(shape: Sequence[int], spacing: Sequence[float],
              target: Sequence[float]) -> tuple[int, ...]:
    """nnU-Net's ``compute_new_shape``: ``round(old_spacing / new_spacing * old_shape)``."""
    return tuple(round(float(s) / float(t) * int(n))
                 for n, s, t in zip(shape, spacing, target, strict=True))


def _lowres_axes(spacing: Sequence[float]) -> list[int]:
    top = max(spacing)
    return [i for i, s in enumerate(spacing) if top / s == 1]


def separate_axis(spec: ResamplingSpec, current: Sequence[float],
                  target: Sequence[float]) -> int | None:
    """The axis resampled apart (nnU-Net's ``determine_do_sep_z_and_axis``), or None."""
    def anisotropic(sp: Sequence[float]) -> bool:
        return max(sp) / min(sp) > spec.anisotropy_threshold

    if spec.force_separate_z is not None:
        axes = _lowres_axes(current) if spec.force_separate_z else None
    elif anisotropic(current):
        axes = _lowres_axes(current)
    elif anisotropic(target):
        axes = _lowres_axes(target)
    else:
        axes = None
    if axes is None or len(axes) != 1:
        return None
    return axes[0]


# ---- scipy (scikit-image resize) path --------------------------------------------------
def _zoom(x: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    """``skimage.transform.resize(x, shape, order, mode='edge', anti_aliasing=False)`` of a
    float64 array: the same ``ndimage.zoom`` call and the same clipping to the input range."""
    factors = [1 / (i / o) for i, o in zip(x.shape, shape, strict=True)]
    out = ndimage.zoom(x, factors, order=order, mode="nearest", grid_mode=True)
    np.clip(out, x.min(), x.max(), out=out)
    return out


def _axis_coordinates(n_in: int, n_out: int) -> np.ndarray:
    scale = float(n_in) / n_out
    return scale * (np.arange(n_out) + 0.5) - 0.5


def _axis_indices_nearest(n_in: int, n_out: int) -> np.ndarray:
    """The source index ``map_coordinates(order=0, mode='nearest')`` picks for each output
    position along one axis (asked of scipy itself so rounding matches exactly)."""
    coords = _axis_coordinates(n_in, n_out)
    return ndimage.map_coordinates(np.arange(n_in, dtype=np.float64), coords[None], order=0,
                                   mode="nearest").astype(np.int64)


def _along_axis(x: np.ndarray, axis: int, n_out: int, order: int) -> np.ndarray:
    """Resample one axis only, as nnU-Net's separate-z step does."""
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    if order == 0:
        return np.take(x, _axis_indices_nearest(n_in, n_out), axis=axis)
    grids = [np.arange(s, dtype=np.float64) for s in x.shape]
    grids[axis] = _axis_coordinates(n_in, n_out)
    coords = np.stack(np.meshgrid(*grids, indexing="ij"))
    return ndimage.map_coordinates(x, coords, order=order, mode="nearest")


def _scipy_resample(channel: np.ndarray, shape: tuple[int, ...], axis: int | None, order: int,
                    order_z: int) -> np.ndarray:
    """One channel (float32 in, float32 out) the way ``resample_data_or_seg`` does it."""
    if axis is None:
        return _zoom(channel.astype(np.float64), shape, order).astype(np.float32)
    plane = tuple(s for i, s in enumerate(shape) if i != axis)
    inter_shape = list(shape)
    inter_shape[axis] = channel.shape[axis]
    inter = np.empty(inter_shape, dtype=np.float32)
    for k in range(channel.shape[axis]):
        index: list[slice | int] = [slice(None)] * channel.ndim
        index[axis] = k
        src = channel[tuple(index)].astype(np.float64)
        inter[tuple(index)] = src if src.shape == plane else _zoom(src, plane, order)
    return _along_axis(inter, axis, shape[axis], order_z).astype(np.float32, copy=False)


# ---- torch path --------------------------------------------------------------------------
def _torch_separate(x: torch.Tensor, shape: Sequence[int], axis: int, plane_mode: str,
                    axis_mode: str | None = None,
                    axis_index: np.ndarray | None = None) -> torch.Tensor:
    """``x`` (spatial only, 3D): in-plane interpolation slice by slice, then the low-res axis
    with ``axis_mode`` or by picking ``axis_index``."""
    moved = x.movedim(axis, 0)  # n_axis, a, b
    plane = [int(s) for i, s in enumerate(shape) if i != axis]
    if list(moved.shape[1:]) != plane:
        moved = F.interpolate(moved[None].float(), size=plane, mode=plane_mode,
                              **({} if plane_mode.startswith("nearest")
                                 else {"align_corners": False}))[0]
    n_out = int(shape[axis])
    if moved.shape[0] != n_out:
        if axis_index is not None:
            moved = moved.index_select(0, torch.from_numpy(axis_index))
        else:
            assert axis_mode is not None
            kw = {} if axis_mode.startswith("nearest") else {"align_corners": False}
            size = (n_out, *moved.shape[1:])
            moved = F.interpolate(moved[None, None].float(), size=size,
                                  mode="trilinear" if axis_mode == "linear" else axis_mode,
                                  **kw)[0, 0]
    return moved.movedim(0, axis)


def _linear_mode(ndim: int) -> str:
    return {1: "linear", 2: "bilinear", 3: "trilinear"}[ndim]


def resample_image(data: np.ndarray, shape: Sequence[int], current: Sequence[float],
                   target: Sequence[float], spec: ResamplingSpec) -> np.ndarray:
    """Image channels ``C, *spatial`` (float32) to ``shape`` as ``resampling_fn_data`` does."""
    shape = tuple(int(s) for s in shape)
    if spec.function in IDENTITY_FUNCTIONS or tuple(data.shape[1:]) == shape:
        return data
    axis = separate_axis(spec, current, target)
    out = np.empty((data.shape[0], *shape), dtype=np.float32)
    for c in range(data.shape[0]):
        if spec.function in TORCH_FUNCTIONS:
            out[c] = _torch_resample(torch.from_numpy(np.ascontiguousarray(data[c])), shape,
                                     axis, spec).numpy()
        else:
            out[c] = _scipy_resample(data[c], shape, axis, spec.order, spec.order_z)
    return out


def _torch_resample(x: torch.Tensor, shape: tuple[int, ...], axis: int | None,
                    spec: ResamplingSpec) -> torch.Tensor:
    if axis is None or x.ndim != 3:
        return F.interpolate(x[None, None].float(), size=shape, mode=_linear_mode(x.ndim),
                             align_corners=False)[0, 0]
    return _torch_separate(x, shape, axis, "bilinear", spec.aniso_axis_mode)


def resample_channel(x: torch.Tensor, shape: Sequence[int], current: Sequence[float],
                     target: Sequence[float], spec: ResamplingSpec) -> torch.Tensor:
    """One class map (spatial only, float32) to ``shape`` as ``resampling_fn_probabilities``
    does; linear interpolation only (so resampling log-probabilities gives the argmax and the
    softmax of resampled logits exactly)."""
    shape = tuple(int(s) for s in shape)
    if spec.function in IDENTITY_FUNCTIONS or tuple(x.shape) == shape:
        return x
    axis = separate_axis(spec, current, target)
    if spec.function in TORCH_FUNCTIONS:
        return _torch_resample(x, shape, axis, spec)
    if spec.order > 1 or (axis is not None and spec.order_z > 1):
        return torch.from_numpy(_scipy_resample(x.numpy(), shape, axis, spec.order,
                                                spec.order_z))
    plane_mode = _linear_mode(x.ndim - (axis is not None)) if spec.order == 1 else "nearest-exact"
    if axis is None or x.ndim != 3:
        if spec.order == 0:
            return torch.from_numpy(_scipy_resample(x.numpy(), shape, None, 0, 0))
        return F.interpolate(x[None, None], size=shape, mode=plane_mode,
                             align_corners=False)[0, 0]
    if spec.order == 0:
        return torch.from_numpy(_scipy_resample(x.numpy(), shape, axis, 0, spec.order_z))
    index = _axis_indices_nearest(x.shape[axis], shape[axis]) if spec.order_z == 0 else None
    return _torch_separate(x, shape, axis, plane_mode, "linear", index)


def nearest_axis_split(spec: ResamplingSpec, in_shape: Sequence[int], shape: Sequence[int],
                       current: Sequence[float],
                       target: Sequence[float]) -> tuple[int, np.ndarray] | None:
    """``(axis, picks)`` when :func:`resample_channel` resamples in plane and then picks whole
    slices along one axis (order_z 0): a per-voxel argmax can then be taken before the picking,
    on the smaller in-plane grid, and the label map picked once. None otherwise."""
    if spec.function not in SCIPY_FUNCTIONS or spec.order != 1 or spec.order_z != 0 \
            or len(shape) != 3:
        return None
    axis = separate_axis(spec, current, target)
    if axis is None or int(in_shape[axis]) == int(shape[axis]):
        return None
    return axis, _axis_indices_nearest(int(in_shape[axis]), int(shape[axis]))
