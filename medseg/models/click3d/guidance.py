"""The network input of click3d: the image and the prompts as channels on the crop grid.

Channels (``C, n, n, n``, DeepGrow/DeepEdit style), in this order:

0. the image, normalised per crop by its 0.5 and 99.5 percentiles to 0..1 (any CT or MR
   contrast);
1. positive clicks: ``exp(-d^2 / 2 sigma^2)`` of the distance ``d`` (crop voxels) to the nearest
   positive click;
2. negative clicks, the same;
3. the previous mask to refine (0/1; zeros when there is none);
4. the boxes: 1 inside a 3-D box; a 2-D box (flat on one axis) marks its rectangle on its
   slice only;
5. ``similarity`` (models from v1.2 on): how close each voxel's intensity is to what the user
   pointed at: ``1 - min(|I - m| / s, 4) / 4``, with ``m`` the median and ``s`` the robust
   spread (1.4826 x MAD, at least 0.5 % of the crop's 0.5-99.5 percentile range) of the
   intensities within a radius of a positive click (3 voxels in training; the maximum over
   the clicks; with no positive click in the crop, the central half of each box). A contrast
   that the crop-wide normalisation squeezes between air and bone (the liver against the soft
   tissue beside it in CT: 20 HU of 2000) is seen at the scale of the clicked tissue's own
   noise.

A model folder lists the channels it was trained with (``guidance.channels``): one of
:data:`LAYOUTS`.

Prompt coordinates here are crop voxel coordinates (see :meth:`.crop.Crop.to_crop`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: the channels of the models up to v1.1
BASE_CHANNELS = ("image", "positive", "negative", "prior", "box")
#: the channels of the current models
CHANNELS = (*BASE_CHANNELS, "similarity")
#: the channel lists a model folder may name
LAYOUTS = (BASE_CHANNELS, CHANNELS)
#: ``similarity``: the radius (crop voxels) around a click whose intensities describe it (the
#: one training uses; a model folder may list others to choose from at inference:
#: ``guidance.similarity_radii``, see :mod:`.model`), the
#: spreads at which the map reaches 0, and at most this many clicks (the first ones inside the
#: crop; a model folder may set fewer: ``guidance.similarity_clicks``)
SIMILARITY_RADIUS = 3
SIMILARITY_LIMIT = 4.0
SIMILARITY_CLICKS = 8


def quantiles(region: torch.Tensor, low: float = 0.005, high: float = 0.995
              ) -> tuple[float, float]:
    """The ``low`` and ``high`` quantiles of ``region``'s intensities."""
    flat = region.reshape(-1).float()
    if flat.numel() > 30_000:  # quantiles of a strided subset: near the same, far less sorting
        flat = flat[:: flat.numel() // 30_000 + 1]
    q = torch.quantile(flat, torch.tensor([low, high]))
    return float(q[0]), float(q[1])


def normalise(image: torch.Tensor, low: float = 0.005, high: float = 0.995,
              centre: float = 1.0, bounds: tuple[float, float] | None = None) -> torch.Tensor:
    """``image`` rescaled so its ``low`` and ``high`` quantiles go to 0 and 1, then clipped.
    ``centre`` < 1 takes the quantiles of the central cube of that fraction of the crop's
    side only (a window on what is around the prompts: soft-tissue contrast in CT is not
    squeezed between air and bone). ``bounds``: those quantiles when already known."""
    if bounds is not None:
        lo, hi = bounds
    elif centre < 1.0:
        n = image.shape[0]
        k = max(2, round(n * centre))
        a = (n - k) // 2
        lo, hi = quantiles(image[a:a + k, a:a + k, a:a + k], low, high)
    else:
        lo, hi = quantiles(image, low, high)
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


def _reference_regions(positive: Sequence[Sequence[float]],
                       boxes: Sequence[tuple[Sequence[float], Sequence[float], int | None]],
                       size: int, clicks: int = SIMILARITY_CLICKS,
                       radius: int = SIMILARITY_RADIUS
                       ) -> list[tuple[slice, ...] | torch.Tensor]:
    """Where the user pointed, on the crop: a ball of ``radius`` voxels around each of the
    first ``clicks`` positive clicks inside it; without one, the central half of each box."""
    regions: list[tuple[slice, ...] | torch.Tensor] = []
    k = torch.arange(size, dtype=torch.float32)
    r = radius
    inside = [p for p in positive if all(0 <= round(float(c)) < size for c in p)]
    for p in inside[:clicks]:
        q = [round(float(c)) for c in p]
        sl = tuple(slice(max(c - r, 0), min(c + r + 1, size)) for c in q)
        d2 = sum(((k[s] - float(c)) ** 2).reshape([-1 if a == b else 1 for b in range(3)])
                 for a, (s, c) in enumerate(zip(sl, p, strict=True)))
        ball = torch.zeros((size,) * 3, dtype=torch.bool)
        ball[sl] = d2 <= r * r + 0.5
        regions.append(ball)
    if regions:
        return regions
    for lo, hi, flat in boxes:
        sl = []
        for a in range(3):
            a_lo, a_hi = sorted((float(lo[a]), float(hi[a])))
            mid, half = (a_lo + a_hi) / 2, max((a_hi - a_lo) / 4, 0.5)
            if a == flat:
                half = 0.5
            first, last = max(round(mid - half), 0), min(round(mid + half) + 1, size)
            if first >= last:
                break
            sl.append(slice(first, last))
        else:
            regions.append(tuple(sl))
    return regions


def similarity_map(image: torch.Tensor, positive: Sequence[Sequence[float]],
                   boxes: Sequence[tuple[Sequence[float], Sequence[float], int | None]],
                   clicks: int = SIMILARITY_CLICKS,
                   bounds: tuple[float, float] | None = None,
                   radius: int = SIMILARITY_RADIUS) -> torch.Tensor:
    """Channel 5 (see the module docstring) of the crop ``image`` as sampled, from the first
    ``clicks`` positive clicks inside the crop, each described by the intensities within
    ``radius`` voxels of it; ``bounds``: the crop's 0.5 and 99.5 percentiles when already
    known."""
    n = image.shape[0]
    out = torch.zeros((n,) * 3)
    regions = _reference_regions(positive, boxes, n, clicks, radius)
    if not regions:
        return out
    image = image.float()
    lo, hi = bounds if bounds is not None else quantiles(image)
    floor = max(0.005 * (hi - lo), 1e-6)
    for region in regions:
        values = image[region].reshape(-1)
        if values.numel() == 0:
            continue
        m = values.median()
        spread = max(1.4826 * float((values - m).abs().median()), floor)
        near = 1 - ((image - m).abs() / spread).clamp(max=SIMILARITY_LIMIT) / SIMILARITY_LIMIT
        out = torch.maximum(out, near)
    return out


def encode(image: torch.Tensor, positive: Sequence[Sequence[float]],
           negative: Sequence[Sequence[float]], prior: torch.Tensor | None,
           boxes: Sequence[tuple[Sequence[float], Sequence[float], int | None]],
           sigma: float, centre: float = 1.0,
           channels: Sequence[str] = CHANNELS,
           similarity_clicks: int = SIMILARITY_CLICKS,
           similarity_radius: int = SIMILARITY_RADIUS) -> torch.Tensor:
    """The ``C, n, n, n`` network input of ``channels`` (one of :data:`LAYOUTS`; see the module
    docstring); ``image`` is the crop as sampled, normalised here (``centre``: see
    :func:`normalise`); ``similarity_clicks`` and ``similarity_radius``: see
    :func:`similarity_map`."""
    n = image.shape[0]
    prior_map = torch.zeros((n,) * 3) if prior is None else prior.float()
    # the crop's percentiles, once, when both the image channel and the similarity need them
    whole = quantiles(image) if "similarity" in channels else None
    maps = [normalise(image, centre=centre, bounds=whole if centre >= 1.0 else None),
            click_map(positive, n, sigma), click_map(negative, n, sigma), prior_map,
            box_map(boxes, n)]
    if whole is not None:
        maps.append(similarity_map(image, positive, boxes, similarity_clicks, whole,
                                   similarity_radius))
    return torch.stack(maps)
