"""The network input of click3d: the image and the prompts as channels on the crop grid.

Channels (``C, n, n, n``, DeepGrow/DeepEdit style), in this order:

0. the image, normalised per crop by its 0.5 and 99.5 percentiles to 0..1 (any CT or MR
   contrast);
1. positive clicks: ``exp(-d^2 / 2 sigma^2)`` of the distance ``d`` (crop voxels) to the nearest
   positive click;
2. negative clicks, the same;
3. the previous mask to refine (0/1; zeros when there is none);
4. the boxes: 1 inside a 3-D box; a 2-D box (flat on one axis) marks its rectangle on its
   slice only.

Prompt coordinates here are crop voxel coordinates (see :meth:`.crop.Crop.to_crop`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

CHANNELS = ("image", "positive", "negative", "prior", "box")


def normalise(image: torch.Tensor, low: float = 0.005, high: float = 0.995,
              centre: float = 1.0) -> torch.Tensor:
    """``image`` rescaled so its ``low`` and ``high`` quantiles go to 0 and 1, then clipped.
    ``centre`` < 1 takes the quantiles of the central cube of that fraction of the crop's
    side only (a window on what is around the prompts: soft-tissue contrast in CT is not
    squeezed between air and bone)."""
    if centre < 1.0:
        n = image.shape[0]
        k = max(2, round(n * centre))
        a = (n - k) // 2
        region = image[a:a + k, a:a + k, a:a + k]
    else:
        region = image
    flat = region.reshape(-1).float()
    if flat.numel() > 30_000:  # quantiles of a strided subset: near the same, far less sorting
        flat = flat[:: flat.numel() // 30_000 + 1]
    q = torch.quantile(flat, torch.tensor([low, high]))
    lo, hi = float(q[0]), float(q[1])
    if hi - lo < 1e-6:
        return torch.zeros_like(image, dtype=torch.float32)
    return ((image.float() - lo) / (hi - lo)).clamp(0, 1)


def click_map(points: Sequence[Sequence[float]], size: int, sigma: float) -> torch.Tensor:
    """Maximum over ``points`` (crop coordinates) of a Gaussian of width ``sigma`` voxels."""
    out = torch.zeros((size,) * 3)
    k = torch.arange(size, dtype=torch.float32)
    for p in points:
        g = [torch.exp(-((k - float(c)) ** 2) / (2 * sigma**2)) for c in p]
        out = torch.maximum(out, g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :])
    return out


def box_map(boxes: Sequence[tuple[Sequence[float], Sequence[float], int | None]],
            size: int) -> torch.Tensor:
    """1 inside each box ``(lo, hi, flat_axis)`` (crop coordinates, corners inclusive); a box
    flat on an axis marks only its slice there."""
    out = torch.zeros((size,) * 3)
    for lo, hi, flat in boxes:
        sl = []
        for a in range(3):
            if a == flat:
                k = round(float(lo[a]))
                if not 0 <= k < size:
                    break
                sl.append(slice(k, k + 1))
                continue
            first = int(np.clip(np.ceil(min(lo[a], hi[a]) - 0.5), 0, size))
            last = int(np.clip(np.floor(max(lo[a], hi[a]) + 0.5) + 1, 0, size))
            sl.append(slice(first, last))
        else:
            out[tuple(sl)] = 1.0
    return out


def encode(image: torch.Tensor, positive: Sequence[Sequence[float]],
           negative: Sequence[Sequence[float]], prior: torch.Tensor | None,
           boxes: Sequence[tuple[Sequence[float], Sequence[float], int | None]],
           sigma: float, centre: float = 1.0) -> torch.Tensor:
    """The ``5, n, n, n`` network input (see the module docstring); ``image`` is the crop as
    sampled, normalised here (``centre``: see :func:`normalise`)."""
    n = image.shape[0]
    prior_map = torch.zeros((n,) * 3) if prior is None else prior.float()
    return torch.stack([normalise(image, centre=centre), click_map(positive, n, sigma),
                        click_map(negative, n, sigma), prior_map, box_map(boxes, n)])
