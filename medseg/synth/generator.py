"""The image generator: one random synthetic head scan (image, label map) from a source.

A :class:`SynthSource` is a brain label map on the working grid (and optionally the real image
that came with it). :func:`synthesize` draws, in this order (SynthSeg's order):

1. a field of view inside the source padded by :attr:`SynthSettings.pad_mm`, and a random
   affine + elastic deformation (:mod:`medseg.synth.deform`);
2. the head around the brain (:mod:`medseg.synth.head`), usually with eyes and nasal air
   (:mod:`medseg.synth.face`), or none (a brain on dark air);
3. per-class Gaussian-mixture intensities (:mod:`medseg.synth.contrast`); with probability
   ``p_real_brain`` the real source image inside the brain instead (rescaled to the drawn WM
   mean), with the synthetic head or air around it;
4. acquisition voxel size (blur, down- and up-sampling), bias field, gamma, Rician noise
   (:mod:`medseg.synth.artefacts`);
5. skull stripping: everything outside the (randomly dilated) brain set to exactly 0.

The label map is deformed with the image, so intensity draws never change labels. The head
classes are collapsed to background in :attr:`SynthSample.label` (see
:mod:`medseg.synth.classes`); :attr:`SynthSample.head_label` keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from medseg.errors import MedsegError
from medseg.synth.artefacts import (
    bias_field,
    degrade_resolution,
    draw_voxel_size,
    gamma,
    rician_noise,
)
from medseg.synth.classes import collapse
from medseg.synth.contrast import draw_means, paint
from medseg.synth.deform import DeformRanges, sampling_grid, warp
from medseg.synth.draws import uniform
from medseg.synth.face import add_face
from medseg.synth.head import add_head, brain_distance


@dataclass(frozen=True)
class SynthSettings:
    """Probabilities and ranges of the generator (recorded in a bundle trained with it)."""

    #: margin added around the source so a head fits around the brain (mm)
    pad_mm: float = 48.0
    #: the field of view is a random fraction of the padded source along each axis
    fov_fraction: tuple[float, float] = (0.7, 1.0)
    #: probability that a training patch is centred on a brain voxel (else anywhere, so
    #: empty air and head-only patches are learnt as background)
    p_foreground: float = 0.7
    p_head: float = 0.5
    #: probability that a head gets eyes, orbital fat and nasal air (:mod:`medseg.synth.face`)
    p_face: float = 0.7
    p_skull_strip: float = 0.35
    #: probability to put the real source image (when given) inside the brain
    p_real_brain: float = 0.5
    p_random_contrast: float = 0.25
    p_t1_contrast: float = 0.5
    p_thick_slices: float = 0.5
    max_thickness_mm: float = 7.0
    max_inplane_mm: float = 3.0
    bias_std: float = 0.3
    gamma_std: float = 0.25
    noise_std: float = 0.05
    deform: DeformRanges = field(default_factory=DeformRanges)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["fov_fraction"] = list(self.fov_fraction)
        return d


@dataclass
class SynthSource:
    """A brain label map on the working grid (``X, Y, Z`` integers, brain classes 1..n_brain),
    its voxel spacing and 4x4 affine, and optionally the real image that came with it."""

    labels: torch.Tensor
    spacing: tuple[float, ...]
    affine: np.ndarray
    n_brain: int
    image: torch.Tensor | None = None
    pad: tuple[int, ...] = ()
    distance: torch.Tensor | None = None

    @classmethod
    def build(cls, labels: np.ndarray | torch.Tensor, spacing: Sequence[float],
              affine: np.ndarray, n_brain: int, image: np.ndarray | torch.Tensor | None = None,
              pad_mm: float = 48.0) -> SynthSource:
        lab = torch.as_tensor(np.asarray(labels)).to(torch.int16)
        if lab.ndim != 3:
            raise MedsegError(f"synthesis needs a 3D label map, got shape {tuple(lab.shape)}")
        if not bool((lab > 0).any()):
            raise MedsegError("synthesis needs a label map with brain voxels; this one is empty")
        if int(lab.max()) > n_brain or int(lab.min()) < 0:
            raise MedsegError(f"label values must be 0..{n_brain}, got {int(lab.min())}.."
                              f"{int(lab.max())}")
        sp = tuple(float(s) for s in spacing)
        pad = tuple(int(np.ceil(pad_mm / s)) for s in sp)
        padding = [p for q in reversed(pad) for p in (q, q)]
        lab_p = F.pad(lab[None, None].float(), padding)[0, 0].to(torch.int16)
        img_p = None
        if image is not None:
            img = torch.as_tensor(np.asarray(image, dtype=np.float32))
            if tuple(img.shape) != tuple(lab.shape):
                raise MedsegError(f"image shape {tuple(img.shape)} differs from label shape "
                                  f"{tuple(lab.shape)}")
            img_p = F.pad(img[None, None], padding)[0, 0]
        dist = torch.from_numpy(brain_distance(lab_p.numpy(), sp))
        return cls(lab_p, sp, np.asarray(affine, dtype=float), n_brain, img_p, pad, dist)


@dataclass
class SynthSample:
    """One synthetic scan: ``image`` (``X, Y, Z`` float32, not normalised), ``label`` (training
    target, head classes as background), ``head_label`` (head classes kept), ``affine`` of the
    field of view in the source's world, and the draws that made it."""

    image: torch.Tensor
    label: torch.Tensor
    head_label: torch.Tensor
    affine: np.ndarray
    draws: dict



def _field_of_view(src: SynthSource, s: SynthSettings, gen: torch.Generator
                   ) -> tuple[list[int], list[int]]:
    shape, offset = [], []
    for n in src.labels.shape:
        m = max(8, round(n * uniform(gen, *s.fov_fraction)))
        shape.append(m)
        offset.append(int(torch.randint(0, n - m + 1, (), generator=gen)))
    return shape, offset


def synthesize(src: SynthSource, gen: torch.Generator,
               settings: SynthSettings | None = None) -> SynthSample:
    """Draw one synthetic scan from ``src`` with the random stream ``gen``."""
    s = settings or SynthSettings()
    shape, offset = _field_of_view(src, s, gen)
    grid = sampling_grid(src.labels.shape, shape, offset, src.spacing, s.deform, gen)
    labels = warp(src.labels, grid, labels=True)
    draws: dict = {"shape": shape, "offset": offset}
    r = float(torch.rand((), generator=gen))
    strip = r < s.p_skull_strip
    with_head = strip or r < s.p_skull_strip + s.p_head
    if with_head:
        source_distance = src.distance if src.distance is not None else torch.from_numpy(
            brain_distance(src.labels.numpy(), src.spacing))
        distance = warp(source_distance, grid, labels=False, padding="border")
        head = add_head(labels, distance, src.n_brain, gen)
        if float(torch.rand((), generator=gen)) < s.p_face:
            head = add_face(head, labels, src.spacing, src.n_brain, gen)
    else:
        head = labels
    means, family = draw_means(src.n_brain, gen, s.p_random_contrast, s.p_t1_contrast)
    image = paint(head, means, gen)
    brain = labels > 0
    source_image = src.image
    real = source_image is not None and float(torch.rand((), generator=gen)) < s.p_real_brain
    if real and source_image is not None:
        real_img = warp(source_image, grid, labels=False)
        wm = real_img[labels == 1]
        scale = float(means[1]) / max(float(wm.median()), 1e-6) if wm.numel() else 1.0
        image = torch.where(brain, real_img * scale, image)
    voxel = draw_voxel_size(src.spacing, gen, s.p_thick_slices, s.max_thickness_mm,
                            s.max_inplane_mm)
    image = degrade_resolution(image, src.spacing, voxel)
    image = image.clamp_min(0) * bias_field(image.shape, gen, s.bias_std)
    image = gamma(image, gen, s.gamma_std)
    image = rician_noise(image, gen, s.noise_std)
    if strip:
        mask = brain
        grow = int(torch.randint(0, 3, (), generator=gen))
        if grow:
            k = 2 * grow + 1
            mask = F.max_pool3d(mask[None, None].float(), k, 1, grow)[0, 0] > 0
        image = torch.where(mask, image, torch.zeros_like(image))
    draws.update(family=family, head=with_head, skull_strip=strip, real_brain=real,
                 voxel_size=[round(v, 2) for v in voxel])
    shift = np.eye(4)
    shift[:3, 3] = np.array(offset, dtype=float) - np.array(src.pad, dtype=float)
    return SynthSample(image.float(), collapse(labels, src.n_brain), head,
                       src.affine @ shift, draws)
