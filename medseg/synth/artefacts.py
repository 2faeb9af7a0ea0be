"""Acquisition effects on a synthetic image: resolution, bias field, gamma and noise.

Resolution is simulated as in SynthSeg: blur with a Gaussian matched to a random acquisition
voxel size (thick slices along one random axis, or a coarser isotropic voxel), resample down to
that voxel size and back up to the working grid. The bias field is the exponential of a smooth
random field; gamma acts on the image rescaled to 0..1; noise is Rician, as in magnitude MR.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.transforms import GaussianSmooth

from medseg.synth.draws import uniform
from medseg.synth.head import smooth_field


def draw_voxel_size(spacing: Sequence[float], gen: torch.Generator, p_thick: float = 0.5,
                    max_thickness: float = 7.0, max_inplane: float = 3.0) -> list[float]:
    """A random acquisition voxel size (mm), never finer than the working ``spacing``."""
    sp = [float(s) for s in spacing]
    if float(torch.rand((), generator=gen)) < p_thick:
        axis = int(torch.randint(0, len(sp), (), generator=gen))
        size = [uniform(gen, s, max(s, max_inplane * 0.8)) for s in sp]
        size[axis] = uniform(gen, sp[axis], max(sp[axis], max_thickness))
        return size
    iso = uniform(gen, 0.0, 1.0)
    return [s + iso * max(0.0, max_inplane - s) for s in sp]


def degrade_resolution(image: torch.Tensor, spacing: Sequence[float],
                       voxel_size: Sequence[float]) -> torch.Tensor:
    """Blur for ``voxel_size``, resample to it and back to the grid of ``image`` (``X, Y, Z``)."""
    factors = [v / float(s) for v, s in zip(voxel_size, spacing, strict=True)]
    if all(f <= 1.05 for f in factors):
        return image
    sigma = [0.45 * f if f > 1.05 else 0.0 for f in factors]
    blurred = GaussianSmooth(sigma=sigma)(image[None])[0]
    low = [max(2, round(n / f)) for n, f in zip(image.shape, factors, strict=True)]
    down = F.interpolate(blurred[None, None], size=low, mode="trilinear", align_corners=False)
    return F.interpolate(down, size=tuple(image.shape), mode="trilinear",
                         align_corners=False)[0, 0]


def bias_field(shape: Sequence[int], gen: torch.Generator, max_std: float = 0.3) -> torch.Tensor:
    """Multiplicative smooth field ``exp(s * f)``, ``f`` a smooth unit field, ``s`` random."""
    return torch.exp(uniform(gen, 0.0, max_std) * smooth_field(shape, 4, gen))


def gamma(image: torch.Tensor, gen: torch.Generator, std: float = 0.25) -> torch.Tensor:
    """Rescale to 0..1 and raise to ``exp(N(0, std))``."""
    lo, hi = image.min(), image.max()
    x = ((image - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
    g = float(torch.exp(torch.randn((), generator=gen) * std))
    return x**g


def rician_noise(image: torch.Tensor, gen: torch.Generator, max_std: float = 0.05
                 ) -> torch.Tensor:
    """Magnitude of the image plus complex Gaussian noise of a random level."""
    s = uniform(gen, 0.0, max_std)
    n1 = torch.randn(image.shape, generator=gen) * s
    n2 = torch.randn(image.shape, generator=gen) * s
    return torch.sqrt((image + n1) ** 2 + n2**2)
