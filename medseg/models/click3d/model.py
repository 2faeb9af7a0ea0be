"""A click3d folder as a promptable :class:`~medseg.models.base.SegmentationModel`.

``prepare`` chooses the crop from the prompts, coarse to fine:

* a box (or a mask to refine) gives the object's extent directly;
* points alone: a first pass on a crop at ``crop.coarse_spacing_mm`` centred on the positive
  clicks finds the object, whose extent (with the clicks) sets the second pass;
* no crop is coarser than the one that holds the whole image (its largest extent over the crop
  size): a small field of view is not looked at as a little bright box in a crop that is mostly
  outside the image (which the network would take for the object);
* the second pass is centred on that extent at ``extent * margin / size`` mm per voxel
  (clamped to ``[min_spacing_mm, max_spacing_mm]``);
* while the object found there touches the crop's faces (it is larger than the crop: the
  first pass under-estimated it), up to ``grow_passes`` more passes at ``grow_factor`` times
  the spacing, centred on what was found.

A click does not say how much of what surrounds it the user means: the fat in a kidney's
sinus or the kidney, a lesion or the liver around it. The ``similarity`` channel describes the
clicked tissue by the intensities within a radius of the click; a model folder may list several
radii (``guidance.similarity_radii``, the first the one training used), and each is one answer
the user may pick (``Prompts.answer``; ``info.answers`` says how many), as SAM offers three
masks for one click.

``predict`` runs the network on the second crop and keeps only the connected parts of the
object that a prompt touches (a positive click, a box, the prior mask), less the parts that hold
a negative click and no positive one; ``restore`` puts the object probability back on the
input's whole grid: outside the crop the prior mask stays as it was (zeros when there is none),
so a click changes only what the network looked at; with ``crop.local_factor`` a click
that disagrees with the prior mask changes it only near itself (:mod:`.local`), and with
``crop.focus_margin`` the newest such click is looked at again on a finer crop centred on it,
whose answer decides the voxels near it (:mod:`.focus`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from medseg.errors import InputError, MedsegError
from medseg.io.json_file import read_json
from medseg.models.base import InferenceSettings, ModelInfo, Prediction
from medseg.models.click3d.config import (
    CONFIG_NAME,
    FORMAT,
    Click3dConfig,
    check_weights,
    read_config,
)
from medseg.models.click3d.crop import Crop, paste_covered, sample_image, sample_mask
from medseg.models.click3d.focus import Focus, focus_crop
from medseg.models.click3d.guidance import encode
from medseg.models.click3d.local import edit_region
from medseg.models.click3d.network import build_network, load_weights
from medseg.ops.device import autocast, resolve_device
from medseg.prompts.resolve import check_offered
from medseg.prompts.types import Prompts
from medseg.volume import Volume

#: the object's extent (mm) assumed when the first pass finds nothing around the clicks
FALLBACK_EXTENT_MM = 30.0


def sniff_click3d(path: Path) -> bool:
    """A folder holding a ``click3d.json`` whose ``format`` is ``click3d``."""
    config = Path(path) / CONFIG_NAME
    if not config.is_file():
        return False
    try:
        return read_json(config).get("format") == FORMAT
    except InputError:
        return False


def click3d_info(config: Click3dConfig) -> ModelInfo:
    policy = config.crop
    training = config.training
    return ModelInfo(
        name=config.name, format=FORMAT, labels={"background": 0, "object": 1},
        spatial_dims=3, in_channels=1, spacing=None, patch_size=(policy.size,) * 3,
        modality=None, source=str(config.path.parent), prompts=("point", "box", "mask"),
        answers=len(config.similarity_radii) if "similarity" in config.channels else 1,
        details={"architecture": config.architecture, "version": config.version,
                 "crop_voxels": policy.size,
                 "spacing_mm": [policy.min_spacing_mm, policy.max_spacing_mm],
                 "coarse_spacing_mm": policy.coarse_spacing_mm,
                 "guidance": list(config.channels),
                 "training_iterations": training.get("iterations"),
                 "training_data": training.get("data", "")})


def describe_click3d(path: Path) -> ModelInfo:
    return click3d_info(read_config(path))


@dataclass
class Click3dInput:
    """A prepared crop: where it lies in the input, the network input, the prompts on it."""

    crop: Crop
    shape: tuple[int, ...]
    x: torch.Tensor  # 5, n, n, n
    positive: np.ndarray  # k, 3 crop coordinates
    negative: np.ndarray  # k, 3 crop coordinates
    has_region_prompt: bool  # a box or a prior mask touches the crop
    #: the object probability when ``prepare`` has already run the network on this crop
    probability: torch.Tensor | None = None
    #: refining a mask: the focus crop of the newest correcting click and its input
    #: (:mod:`.focus`; the input's ``probability`` once ``predict`` has run)
    focus: tuple[Focus, Click3dInput] | None = None


def _points(prompts: Prompts, positive: bool) -> np.ndarray:
    pts = [p.position for p in prompts.points if p.positive == positive]
    return np.asarray(pts, dtype=float).reshape(-1, 3)


def _box_extent(prompts: Prompts) -> tuple[np.ndarray, np.ndarray] | None:
    """The voxel range covered by the boxes, the prior mask and the positive clicks (None when
    there is neither box nor mask)."""
    los, his = [], []
    for b in prompts.boxes:
        los.append(np.asarray(b.lo, float))
        his.append(np.asarray(b.hi, float))
    if prompts.mask is not None and prompts.mask.any():
        mask = np.asarray(prompts.mask, dtype=bool)
        rows = [np.flatnonzero(mask.any(axis=tuple(b for b in range(mask.ndim) if b != a)))
                for a in range(mask.ndim)]
        los.append(np.array([r[0] for r in rows], dtype=float))
        his.append(np.array([r[-1] for r in rows], dtype=float))
    if not los:
        return None
    pos = _points(prompts, True)
    if len(pos):
        los.append(pos.min(0))
        his.append(pos.max(0))
    return np.min(los, axis=0), np.max(his, axis=0)


def _touches_faces(mask: torch.Tensor, fraction: float = 0.02) -> bool:
    """Whether ``mask`` covers at least ``fraction`` of one of the crop's six faces."""
    faces = [mask.select(a, i) for a in range(3) for i in (0, -1)]
    return any(float(f.float().mean()) >= fraction for f in faces)


def _holding(crop: Crop, prompts: Prompts) -> Crop:
    """``crop`` moved, where needed, so that the newest point lies at least a quarter of the
    crop inside each face: an object longer than the coarsest crop (an aorta) is seen around
    the part the user just clicked, not around its middle, where the click would be lost."""
    if not prompts.points:
        return crop
    newest = np.asarray(prompts.points[-1].position, dtype=float)
    centre = np.asarray(crop.centre, dtype=float)
    steps = np.array([crop.step(a) for a in range(len(centre))])
    reach = (crop.size / 4) * steps  # input voxels from the centre to a quarter inside
    moved = np.clip(centre, newest - reach, newest + reach)
    if np.array_equal(moved, centre):
        return crop
    return Crop(tuple(float(c) for c in moved), crop.spacing, crop.size, crop.input_spacing)


def _components_at(comps: np.ndarray, points: np.ndarray) -> set[int]:
    """The labels of ``comps`` (0: none) under the crop coordinates ``points``."""
    n = comps.shape[0]
    found = set()
    for q in np.round(points).astype(int):
        if np.all((q >= 0) & (q < n)) and comps[tuple(q)]:
            found.add(int(comps[tuple(q)]))
    return found


class Click3dModel:
    """See the module docstring."""

    def __init__(self, config: Click3dConfig, device: str | torch.device | None = None) -> None:
        self.config = config
        self.policy = config.crop
        self.sigma = config.sigma
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        check_weights(config)
        self.channels = config.channels
        self.similarity_clicks = config.similarity_clicks
        self.similarity_radii = config.similarity_radii
        net = build_network(config.architecture, config.params, len(self.channels))
        self.net = load_weights(net, config.weights).to(self.device)
        self.info = click3d_info(config)
        self.postprocessors: list[Any] = []

    # ---- the crop and its network input -------------------------------------------------
    def _input(self, image: torch.Tensor, prompts: Prompts, crop: Crop,
               radius: int) -> Click3dInput:
        boxes = []
        for b in prompts.boxes:
            lo, hi = crop.to_crop(np.asarray(b.lo)), crop.to_crop(np.asarray(b.hi))
            boxes.append((tuple(lo), tuple(hi), b.flat_axis))
        prior = None
        if prompts.mask is not None and prompts.mask.any():
            prior = sample_mask(torch.from_numpy(np.ascontiguousarray(prompts.mask)), crop)
        pos, neg = crop.to_crop(_points(prompts, True)), crop.to_crop(_points(prompts, False))
        x = encode(sample_image(image, crop), [tuple(p) for p in pos], [tuple(p) for p in neg],
                   prior, boxes, self.sigma, self.policy.normalise_centre, self.channels,
                   self.similarity_clicks, radius)
        region = bool(x[4].any()) or (prior is not None and bool(prior.any()))
        return Click3dInput(crop, tuple(image.shape), x, pos.reshape(-1, 3),
                            neg.reshape(-1, 3), region)

    @torch.no_grad()
    def _object(self, prepared: Click3dInput) -> torch.Tensor:
        """Object probability on the crop, parts no prompt touches removed."""
        x = prepared.x[None].to(self.device)
        with autocast(self.device):
            logits = self.net(x)
        p = torch.sigmoid(logits.float())[0, 0].cpu()
        return self._prompted_parts(p, prepared)

    def _prompted_parts(self, p: torch.Tensor, prepared: Click3dInput) -> torch.Tensor:
        mask = (p >= self.policy.threshold).numpy()
        if not mask.any():
            return p
        comps, count = ndimage.label(mask)
        if count <= 1:
            return p
        clicked = _components_at(comps, prepared.positive)
        keep = set(clicked)
        if prepared.has_region_prompt:
            guide = (prepared.x[3] > 0.5) | (prepared.x[4] > 0.5)
            keep |= {int(c) for c in np.unique(comps[guide.numpy()]) if c}
        # a part holding a negative click and no positive one is what the user took away
        keep -= _components_at(comps, prepared.negative) - clicked
        if not keep:
            return p
        drop = ~np.isin(comps, sorted(keep)) & mask
        return torch.where(torch.from_numpy(drop), torch.zeros_like(p), p)

    def _coarse_extent(self, image: torch.Tensor, prompts: Prompts, spacing: np.ndarray,
                       whole: float, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """The voxel range of the object found by the first pass around the clicks (at most
        ``whole`` mm per voxel: the spacing at which the crop holds the whole image)."""
        pos = _points(prompts, True)
        anchor = pos if len(pos) else _points(prompts, False)
        centre = anchor.mean(0)
        crop = Crop(tuple(centre), min(self.policy.coarse_spacing_mm, whole), self.policy.size,
                    tuple(spacing))
        p = self._object(self._input(image, prompts, crop, radius))
        idx = np.argwhere((p >= self.policy.threshold).numpy())
        if len(idx) == 0 or not len(pos):
            half = FALLBACK_EXTENT_MM / 2 / spacing
            return anchor.min(0) - half, anchor.max(0) + half
        lo = np.array([crop.to_input(a, idx[:, a].min()) for a in range(3)])
        hi = np.array([crop.to_input(a, idx[:, a].max()) for a in range(3)])
        return np.minimum(lo, pos.min(0)), np.maximum(hi, pos.max(0))

    def _whole_image_spacing(self, shape: tuple[int, ...], spacing: np.ndarray) -> float:
        """The spacing (mm) at which the crop holds the whole image along its longest extent
        (never finer than ``min_spacing_mm``)."""
        fov = float(np.max(np.asarray(shape, dtype=float) * spacing))
        return max(self.policy.min_spacing_mm, fov / self.policy.size)

    # ---- the protocol ---------------------------------------------------------------------
    def prepare(self, volume: Volume, settings: InferenceSettings) -> Click3dInput:
        prompts = settings.prompts
        if not prompts or not (prompts.points or prompts.boxes):
            raise MedsegError(f"model {self.info.name!r} needs at least one point or box")
        image = torch.from_numpy(np.ascontiguousarray(volume.array[0], dtype=np.float32))
        spacing = np.asarray(volume.spacing, dtype=float)
        check_offered(prompts.answer, self.info.answers, self.info.name, "prompts")
        radius = self.similarity_radii[prompts.answer]
        prepared = self._prepare_at(image, prompts, spacing, radius)
        if prompts.mask is not None and prompts.mask.any():
            focus = focus_crop(np.asarray(prompts.mask, dtype=bool), prompts.points,
                               prepared.crop, self.policy)
            if focus is not None:
                prepared.focus = focus, self._input(image, prompts, focus.crop, radius)
        return prepared

    def _prepare_at(self, image: torch.Tensor, prompts: Prompts, spacing: np.ndarray,
                    radius: int) -> Click3dInput:
        """The crop (coarse to fine, see the module docstring) and its network input, with
        the ``similarity`` channel read within ``radius`` voxels of the positive clicks."""
        extent = _box_extent(prompts)
        if extent is None and self.policy.start_extent_mm > 0:
            anchor = _points(prompts, True)
            anchor = anchor if len(anchor) else _points(prompts, False)
            half = self.policy.start_extent_mm / 2 / spacing
            extent = anchor.min(0) - half, anchor.max(0) + half
        whole = self._whole_image_spacing(image.shape, spacing)
        lo, hi = extent if extent is not None else self._coarse_extent(image, prompts, spacing,
                                                                       whole, radius)
        size_mm = float(np.max((hi - lo + 1) * spacing))
        coarsest = min(self.policy.max_spacing_mm, whole)
        crop = Crop(tuple((lo + hi) / 2), min(self.policy.fine_spacing(size_mm), coarsest),
                    self.policy.size, tuple(spacing))
        crop = _holding(crop, prompts)
        prepared = self._input(image, prompts, crop, radius)
        for _ in range(int(self.policy.grow_passes)):
            if crop.spacing >= coarsest:
                break
            prepared.probability = self._object(prepared)
            found = prepared.probability >= self.policy.threshold
            if not _touches_faces(found):
                break
            idx = np.argwhere(found.numpy())
            middle = [float(crop.to_input(a, (idx[:, a].min() + idx[:, a].max()) / 2))
                      for a in range(3)]
            crop = _holding(Crop(tuple(middle), min(crop.spacing * self.policy.grow_factor,
                                                    coarsest), crop.size, tuple(spacing)),
                            prompts)
            prepared = self._input(image, prompts, crop, radius)
        return prepared

    def predict(self, prepared: Click3dInput, settings: InferenceSettings) -> torch.Tensor:
        p = prepared.probability if prepared.probability is not None else self._object(prepared)
        if prepared.focus is not None and prepared.focus[1].probability is None:
            prepared.focus[1].probability = self._object(prepared.focus[1])
        return torch.stack([1 - p, p]).float()

    def _kept(self, prior: np.ndarray, seen: np.ndarray, prepared: Click3dInput,
              settings: InferenceSettings) -> np.ndarray | None:
        """On the crop's window: where the prior mask stays as it was (local edits: beyond the
        disagreeing clicks' reach, unless the network is surer than ``local_confidence``);
        None where the network's answer is taken everywhere. ``seen``: the network's object
        probability there."""
        box = prepared.crop.covered(prepared.shape)
        region = edit_region(prior, settings.prompts.points, prepared.crop.input_spacing, box,
                             self.policy.local_factor, self.policy.local_min_mm)
        if region is None:
            return None
        sure = self.policy.local_confidence
        before = prior[tuple(slice(lo, hi) for lo, hi in box)]
        return ~region & ((before & (seen >= 1 - sure)) | (~before & (seen <= sure)))

    def restore(self, prepared: Click3dInput, probabilities: torch.Tensor,
                settings: InferenceSettings) -> Prediction:
        """The object probability on the input grid: the network's inside the crop (and the
        focus crop's ball), the prior mask (or nothing) elsewhere; only the part of the grid
        the crops cover is computed."""
        shape = prepared.shape
        prior = settings.prompts.mask if settings.prompts is not None else None
        prior = np.asarray(prior, dtype=bool) if prior is not None and prior.any() else None
        main = prepared.crop.covered(shape)
        # the focus crop's answer, once ``predict`` has run the network on it
        focus, closer = prepared.focus or (None, None)
        if closer is None or closer.probability is None:
            focus = None
        boxes = [main] if focus is None else [main, focus.crop.covered(shape)]
        union = [(min(b[a][0] for b in boxes), max(b[a][1] for b in boxes))
                 for a in range(len(shape))]
        where = tuple(slice(lo, hi) for lo, hi in union)
        obj = (np.zeros([hi - lo for lo, hi in union], dtype=np.float32) if prior is None
               else prior[where].astype(np.float32))

        def inside(box: list[tuple[int, int]]) -> tuple[slice, ...]:
            return tuple(slice(lo - u, hi - u) for (lo, hi), (u, _) in zip(box, union,
                                                                              strict=True))

        seen = paste_covered(probabilities[1:2], prepared.crop, shape)[0].numpy()
        keep = self._kept(prior, seen, prepared, settings) if prior is not None else None
        obj[inside(main)] = seen if keep is None else np.where(keep, obj[inside(main)], seen)
        if focus is not None:
            near = paste_covered(closer.probability[None], focus.crop, shape)[0].numpy()
            part = inside(focus.crop.covered(shape))
            obj[part] = np.where(focus.ball(shape), near, obj[part])
        channels = (np.zeros(shape, dtype=np.uint8) if prior is None
                    else prior.astype(np.uint8))
        channels[where] = obj >= self.policy.threshold
        if not settings.probabilities:
            return Prediction(channels)
        full = channels.astype(np.float32) if prior is not None else np.zeros(shape, np.float32)
        full[where] = obj
        return Prediction(channels, np.stack([1 - full, full]))


def load_click3d(path: Path, *, registry: Any = None, device: Any = None,
                 **_options: Any) -> Click3dModel:
    return Click3dModel(read_config(path), device)
