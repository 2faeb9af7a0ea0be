"""Synthetic training crops: random label maps painted with random intensities (SynthSeg's
idea, on the crop grid directly), one object of which is the target.

A crop is a background of 2-7 "tissues" (the argmax of smooth random fields) with 1-6 objects
drawn over it, each the union of 1-3 randomly rotated, surface-perturbed ellipsoids (or a
tube). The target is one object, usually near the centre; its size runs from a few voxels to
most of the crop. Every label gets a Gaussian-mixture intensity with a random mean and spread;
then blur, a bias field, gamma and noise (:mod:`medseg.synth.artefacts`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from medseg.synth.artefacts import bias_field, gamma
from medseg.synth.head import smooth_field


def _rotation(rng: np.random.Generator) -> torch.Tensor:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return torch.as_tensor(q * np.sign(np.diag(r)), dtype=torch.float32)


def _grid(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    return torch.stack(torch.meshgrid(k, k, k, indexing="ij"), dim=-1)  # n, n, n, 3


def _ellipsoid(grid: torch.Tensor, centre: np.ndarray, radii: np.ndarray,
               rng: np.random.Generator, gen: torch.Generator, roughness: float) -> torch.Tensor:
    """Voxels inside a rotated ellipsoid whose surface is perturbed by ``roughness``; only the
    box around its bounding sphere is evaluated."""
    n = grid.shape[0]
    mask = torch.zeros(grid.shape[:3], dtype=torch.bool)
    reach = float(np.max(radii)) * (1 + roughness) + 1
    box = [(int(max(0, np.floor(c - reach))), int(min(n, np.ceil(c + reach) + 1))) for c in centre]
    if any(hi <= lo for lo, hi in box):
        return mask
    sl = tuple(slice(lo, hi) for lo, hi in box)
    local = (grid[sl] - torch.as_tensor(centre, dtype=torch.float32)) @ _rotation(rng)
    f = ((local / torch.as_tensor(radii, dtype=torch.float32)) ** 2).sum(-1)
    if roughness > 0:
        f = f * (1 + roughness * smooth_field(f.shape, int(rng.integers(3, 7)), gen))
    mask[sl] = f < 1
    return mask


def random_object(grid: torch.Tensor, centre: np.ndarray, size: float,
                  rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
    """A blob about ``size`` voxels across around ``centre``: 1-3 ellipsoids, or a tube."""
    r = size / 2
    roughness = float(rng.uniform(0, 0.5))
    if rng.random() < 0.12:  # a tube, like a vessel
        radii = np.array([r, max(r / rng.uniform(3, 8), 1.2), max(r / rng.uniform(3, 8), 1.2)])
        return _ellipsoid(grid, centre, radii, rng, gen, roughness * 0.3)
    mask = torch.zeros(grid.shape[:3], dtype=torch.bool)
    for i in range(int(rng.integers(1, 4))):
        radii = r * rng.uniform(0.45, 1.0, size=3) * (1.0 if i == 0 else rng.uniform(0.5, 0.9))
        radii = np.maximum(radii, 1.0)
        offset = 0 if i == 0 else rng.normal(0, r * 0.45, size=3)
        mask |= _ellipsoid(grid, centre + offset, radii, rng, gen, roughness)
    return mask


def _background(n: int, rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
    """2-7 tissues: the argmax of smooth random fields (at half resolution, then doubled)."""
    k = int(rng.integers(2, 8))
    coarse = int(rng.integers(2, 7))
    half = (n + 1) // 2
    fields = torch.randn((1, k, coarse, coarse, coarse), generator=gen)
    fields = F.interpolate(fields, size=(half, half, half), mode="trilinear", align_corners=True)
    labels = fields[0].argmax(0).to(torch.uint8)
    labels = labels.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2)
    return labels[:n, :n, :n].long()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 0.3:
        return x
    radius = max(1, math.ceil(2.5 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=torch.float32)
    w = torch.exp(-(k**2) / (2 * sigma**2))
    w = w / w.sum()
    y = x[None, None]
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = -1
        pad = [0] * 6
        pad[2 * (2 - axis)], pad[2 * (2 - axis) + 1] = radius, radius
        y = F.conv3d(F.pad(y, pad, mode="replicate"), w.view(shape))
    return y[0, 0]


def paint(labels: torch.Tensor, target_value: int, rng: np.random.Generator,
          gen: torch.Generator, min_contrast: float) -> torch.Tensor:
    """Random Gaussian-mixture intensities; the target's mean differs by at least
    ``min_contrast`` from every label touching it."""
    n_labels = int(labels.max()) + 1
    means = torch.as_tensor(rng.uniform(0, 1, size=n_labels), dtype=torch.float32)
    if min_contrast > 0:
        target = (labels == target_value).float()[None, None]
        ring = F.max_pool3d(target, 3, 1, 1)[0, 0].bool() & (labels != target_value)
        touching = torch.unique(labels[ring]).tolist()
        for _ in range(20):
            if all(abs(float(means[target_value] - means[t])) >= min_contrast for t in touching):
                break
            means[target_value] = float(rng.uniform(0, 1))
    stds = torch.as_tensor(rng.uniform(0, 0.08, size=n_labels), dtype=torch.float32)
    idx = labels.long()
    image = means[idx] + stds[idx] * torch.randn(labels.shape, generator=gen)
    if rng.random() < 0.5:  # texture: slow variation inside tissues
        image = image + float(rng.uniform(0, 0.06)) * smooth_field(labels.shape, 8, gen)
    return image


def degrade(image: torch.Tensor, rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
    """Blur, bias field, gamma, noise."""
    image = _blur(image, float(rng.uniform(0, 1.3)))
    if rng.random() < 0.6:
        image = image * bias_field(image.shape, gen, 0.35)
    image = gamma(image, gen, 0.3)
    return image + float(rng.uniform(0, 0.08)) * torch.randn(image.shape, generator=gen)


def synthetic_crop(n: int, rng: np.random.Generator, gen: torch.Generator,
                   p_large: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, target) on an ``n``^3 grid: float32 image, boolean target (not empty).
    ``p_large``: the probability that the target's size is drawn uniformly up to the crop's
    (else log-uniformly, which favours small objects)."""
    grid = _grid(n)
    while True:
        labels = _background(n, rng, gen)
        value = int(labels.max()) + 1
        # the target: from 4 voxels to most of the crop across, mostly near the centre
        size = float(rng.uniform(0.25 * n, 1.1 * n)) if rng.random() < p_large else \
            float(np.exp(rng.uniform(math.log(4), math.log(0.85 * n))))
        centre = (n - 1) / 2 + rng.normal(0, 0.12 * n, size=3)
        others = int(rng.integers(0, 6))
        order = int(rng.integers(0, others + 1))
        target_value = value + order
        for j in range(others + 1):
            if j == order:
                obj = random_object(grid, centre, size, rng, gen)
            else:
                obj = random_object(grid, rng.uniform(0, n - 1, size=3),
                                    float(np.exp(rng.uniform(math.log(4), math.log(0.6 * n)))),
                                    rng, gen)
            labels[obj] = value + j
        target = labels == target_value
        if int(target.sum()) >= 20:
            break
    min_contrast = 0.12 if rng.random() < 0.9 else 0.0
    image = degrade(paint(labels, target_value, rng, gen, min_contrast), rng, gen)
    return image.float(), target
