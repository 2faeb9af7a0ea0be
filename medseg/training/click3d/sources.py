"""Training crops from real labelled volumes: the training splits of the bundled datasets.

Each volume offers target objects (a class, or a union of classes such as the whole brain);
classes listed as held out are never a target (they stay in the image, as background), so the
model can be checked on a structure class it never learnt. A crop is either *fine* (centred on
the object's box, its extent ``margin`` times smaller than the crop, as the model's second pass
sees it) or *coarse* (centred on a click inside the object at the first-pass spacing), with
random flips, axis permutations and a little anisotropic scaling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from medseg.models.click3d.crop import Crop, sample_image, sample_mask
from medseg.training.click3d.shapes import degrade, paint


@dataclass(frozen=True)
class Target:
    name: str
    classes: tuple[int, ...]
    weight: float = 1.0


@dataclass
class Case:
    image: torch.Tensor  # X, Y, Z float32
    labels: torch.Tensor  # X, Y, Z uint8
    spacing: tuple[float, ...]
    #: per target: (mask, extent in mm, voxels deep inside it (candidate clicks), weight)
    targets: list[tuple[str, torch.Tensor, float, np.ndarray, float, np.ndarray]]


def _load(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    img: Any = nib.load(str(path))
    return np.asarray(img.dataobj), tuple(float(z) for z in img.header.get_zooms()[:3])


def training_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """``(image, labels)`` paths of every case of an nnU-Net-style dataset folder's training
    split (``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``); the test split is
    never listed."""
    folder = Path(folder)
    return [(folder / "imagesTr" / f"{label.name[: -len('.nii.gz')]}_0000.nii.gz", label)
            for label in sorted((folder / "labelsTr").glob("*.nii.gz"))]


def load_cases(folder: str | Path, targets: Sequence[Target]) -> list[Case]:
    """Every case of the training split of an nnU-Net-style dataset folder
    (:func:`training_pairs`) with the ``targets`` present in it."""
    cases = []
    for image_path, label_path in training_pairs(folder):
        image, spacing = _load(image_path)
        labels, _ = _load(label_path)
        cases.append(make_case(image, labels, spacing, targets))
    return cases


def make_case(image: np.ndarray, labels: np.ndarray, spacing: tuple[float, ...],
              targets: Sequence[Target]) -> Case:
    """A :class:`Case` of one labelled volume, with the ``targets`` present in it."""
    found = []
    for t in targets:
        mask = np.isin(labels, t.classes)
        if mask.sum() < 20:
            continue
        box = np.argwhere(mask)
        extent = float(np.max((box.max(0) - box.min(0) + 1) * np.asarray(spacing)))
        depth = ndimage.distance_transform_edt(mask, sampling=spacing)
        deep = np.argwhere(depth >= 0.4 * depth.max())
        found.append((t.name, torch.from_numpy(mask), extent, deep, t.weight,
                      (box.min(0) + box.max(0)) / 2))
    return Case(torch.from_numpy(np.asarray(image, dtype=np.float32)),
                torch.from_numpy(np.asarray(labels).astype(np.uint8)), spacing, found)


def random_view(image: torch.Tensor, target: torch.Tensor, rng: np.random.Generator,
                extra: torch.Tensor | None = None):
    """The same random flips and axis permutation applied to both (and to ``extra``)."""
    perm = tuple(int(a) for a in rng.permutation(3))
    flips = [a for a in range(3) if rng.random() < 0.5]
    out: list[torch.Tensor | None] = []
    for x in (image, target, extra):
        if x is None:
            out.append(None)
            continue
        x = x.permute(perm)
        out.append(x.flip(flips) if flips else x)
    return out


def _repaint(image: torch.Tensor, labels: torch.Tensor, target: torch.Tensor,
             rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
    """A new contrast for a real crop: its label classes and intensity bands as the classes of
    a random Gaussian mixture (the target its own class)."""
    bands = torch.bucketize(image, torch.quantile(image.reshape(-1)[::7],
                                                  torch.tensor([0.2, 0.4, 0.6, 0.8])))
    classes = torch.where(labels > 0, labels.long() + 4, bands)
    classes = torch.where(target, torch.full_like(classes, int(classes.max()) + 1), classes)
    return degrade(paint(classes, int(classes.max()), rng, gen, 0.1), rng, gen)


def _augment(image: torch.Tensor, rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
    lo, hi = float(image.min()), float(image.max())
    x = (image - lo) / max(hi - lo, 1e-6)
    x = x.clamp(0, 1) ** float(np.exp(rng.normal(0, 0.3)))
    if rng.random() < 0.2:
        x = 1 - x
    return x + float(rng.uniform(0, 0.04)) * torch.randn(x.shape, generator=gen)


def real_crop(cases: Sequence[Case], n: int, coarse_spacing: float,
              margin_range: tuple[float, float], rng: np.random.Generator,
              gen: torch.Generator, p_coarse: float = 0.4, p_repaint: float = 0.3
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, target) on an ``n``^3 crop of a random case and target."""
    while True:
        case = cases[int(rng.integers(len(cases)))]
        if case.targets:
            break
    weights = np.array([t[4] for t in case.targets])
    _name, mask, extent, deep, _w, middle = case.targets[int(rng.choice(len(weights),
                                                                       p=weights / weights.sum()))]
    spacing = np.asarray(case.spacing) * rng.uniform(0.9, 1.1, size=3)
    if rng.random() < p_coarse:
        centre = deep[int(rng.integers(len(deep)))] + rng.normal(0, 2.0, size=3) / spacing
        s = coarse_spacing * float(rng.uniform(0.8, 1.25))
    else:
        centre = middle + rng.normal(0, 0.08 * extent, size=3) / spacing
        r = math.exp(rng.uniform(math.log(margin_range[0]), math.log(margin_range[1])))
        s = float(np.clip(extent * r / n, 0.5, 6.0))
    crop = Crop(tuple(float(c) for c in centre), s, n, tuple(float(v) for v in spacing))
    image = sample_image(case.image, crop)
    target = sample_mask(mask, crop).bool()
    if rng.random() < p_repaint:
        labels = torch.round(_resample_labels(case.labels, crop)).long()
        image = _repaint(image, labels, target, rng, gen)
    else:
        image = _augment(image, rng, gen)
    image, target, _ = random_view(image, target, rng)
    return image.contiguous(), target.contiguous()


def _resample_labels(labels: torch.Tensor, crop: Crop) -> torch.Tensor:
    """Nearest-neighbour crop of a label map."""
    coords = [np.clip(np.round(c), 0, n - 1).astype(np.int64)
              for c, n in zip(crop.input_coordinates(), labels.shape, strict=True)]
    out = labels[np.ix_(*coords)].float()
    for axis, (c, n) in enumerate(zip(crop.input_coordinates(), labels.shape, strict=True)):
        outside = torch.as_tensor((c < -0.5) | (c > n - 0.5))
        shape = [1, 1, 1]
        shape[axis] = -1
        out = torch.where(outside.view(shape), torch.zeros_like(out), out)
    return out
