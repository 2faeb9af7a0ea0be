"""MedSAM's image preparation, step for step as its authors' scripts do it.

1. The whole volume to ``uint8`` 0-255 (``pre_CT_MR.py``, the preparation of MedSAM's training
   data): CT clipped to the soft-tissue window (level 40, width 400 HU), MR and everything else
   clipped to the 0.5-99.5th percentiles of its non-zero voxels (zeros stay zero); then
   min-max scaled to 0-255 and truncated to ``uint8``. ``minmax`` skips the clipping (as the
   authors' 3-D box script ``medsam_infer_3Dbox_adrenal.py`` does).
2. Each 2-D slice as ``MedSAM_Inference.py`` treats an image: three equal channels, resized
   to the network's square input (1024) by ``skimage.transform.resize(order=3,
   preserve_range=True, anti_aliasing=True)`` (reproduced with :mod:`scipy.ndimage` below:
   Gaussian pre-filter of sigma ``(factor - 1) / 2`` when shrinking, cubic spline zoom with
   mirrored borders on the pixel grid, output clipped to the input's range), truncated to
   ``uint8``, then scaled to [0, 1] by its own min and max. No mean/std normalisation: MedSAM
   calls the image encoder directly.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

#: MedSAM's CT window (pre_CT_MR.py: WINDOW_LEVEL 40, WINDOW_WIDTH 400)
CT_LEVEL, CT_WIDTH = 40.0, 400.0
#: MedSAM's MR (non-CT) clipping percentiles of the non-zero voxels
MR_PERCENTILES = (0.5, 99.5)
INTENSITY_MODES = ("auto", "ct", "mr", "minmax")
#: ``auto`` takes an image for CT when its 0.5th percentile is at or below this (air in HU;
#: the rule medseg's QC uses to guess a modality)
CT_AIR_HU = -500.0
_SAMPLE = 500_000


def auto_intensity(array: np.ndarray) -> str:
    """``ct`` for an image in Hounsfield units (it holds air near -1000), else ``mr`` (MedSAM
    prepares every non-CT modality the MR way)."""
    flat = np.asarray(array).reshape(-1)
    if flat.size > _SAMPLE:
        flat = flat[:: flat.size // _SAMPLE]
    return "ct" if float(np.percentile(flat, 0.5)) <= CT_AIR_HU else "mr"


def _scaled_uint8(values: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.uint8((values - lo) / (hi - lo) * 255.0)


def volume_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """``array`` (any spatial shape) as MedSAM's 0-255 ``uint8`` volume; ``mode`` is ``ct``,
    ``mr`` or ``minmax`` (``auto`` is resolved by the caller)."""
    data = np.asarray(array, dtype=np.float64)
    if mode == "ct":
        return _scaled_uint8(np.clip(data, CT_LEVEL - CT_WIDTH / 2, CT_LEVEL + CT_WIDTH / 2))
    if mode == "minmax":
        return _scaled_uint8(data)
    positive = data[data > 0]
    if positive.size == 0:
        return np.zeros(data.shape, dtype=np.uint8)
    lo, hi = np.percentile(positive, MR_PERCENTILES)
    out = _scaled_uint8(np.clip(data, lo, hi))
    out[data == 0] = 0
    return out


def resize_cubic(image: np.ndarray, size: int) -> np.ndarray:
    """``skimage.transform.resize(image, (size, size), order=3, preserve_range=True,
    anti_aliasing=True)`` of a 2-D or ``H, W, C`` image, as float64."""
    img = np.asarray(image, dtype=np.float64)
    out_shape = (size, size, *img.shape[2:])
    factors = np.asarray(img.shape, dtype=float) / np.asarray(out_shape, dtype=float)
    sigma = np.maximum(0.0, (factors - 1.0) / 2.0)
    filtered = ndimage.gaussian_filter(img, sigma, cval=0.0, mode="mirror") \
        if np.any(sigma > 0) else img
    out = ndimage.zoom(filtered, [1.0 / f for f in factors], order=3, mode="mirror", cval=0.0,
                       grid_mode=True)
    np.clip(out, img.min(), img.max(), out=out)
    return out


def slice_input(slice_uint8: np.ndarray, size: int) -> torch.Tensor:
    """One ``H, W`` ``uint8`` slice as the network's ``1, 3, size, size`` float input."""
    # the three channels are equal, so one is resized: skimage's zoom over ``H, W, 3`` gave
    # the same uint8 pixels on every slice tried (sample_data/scripts/make_sam_fixtures.py
    # checks it) at a twentieth of the time
    resized = resize_cubic(slice_uint8, size).astype(np.uint8)
    lo, hi = resized.min(), resized.max()
    scaled = (resized - lo) / np.clip(hi - lo, a_min=1e-8, a_max=None)
    return torch.tensor(scaled).float().expand(1, 3, size, size).contiguous()
