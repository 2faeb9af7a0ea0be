"""A SAM model folder (MedSAM ViT-B) as a promptable
:class:`~medseg.models.base.SegmentationModel`.

``prepare`` turns the volume into MedSAM's ``uint8`` volume (:mod:`.preprocessing`) and plans
the slices to segment (:mod:`.slices`); ``predict`` runs MedSAM's inference on each slice as
``MedSAM_Inference.py`` does (image embedding of the 1024 x 1024 slice, box in 1024 pixels,
single-mask output, sigmoid of the 256 x 256 logits, bilinear resize to the slice, object where
the probability exceeds 0.5) and propagates from slice to slice; ``restore`` puts the object
probabilities back on the whole input grid.

SAM answers an ambiguous prompt (one click: the part or the whole?) with three more masks
(``multimask_output=True``); they are the model's answers 2-4 (``Prompts.answer`` 1-3) on the
slices the user prompted, answer 1 being MedSAM's single mask. Propagated slices always use the
single mask, as MedSAM's 3-D script does.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from medseg.errors import InputError
from medseg.io.checksum import sha256_file
from medseg.models.base import ModelInfo, Prediction
from medseg.models.sam.checkpoint import read_state_dict
from medseg.models.sam.config import SamConfig, config_from_state_dict
from medseg.models.sam.folder import FORMAT, VARIANTS, SamFolder, read_folder
from medseg.models.sam.network import SamNetwork, load_state
from medseg.models.sam.preprocessing import auto_intensity, slice_input, volume_to_uint8
from medseg.models.sam.slices import (
    SlicePlan,
    SliceSeed,
    nearest_upsample_box,
    plan_slices,
    put_slice,
    slice_image,
)
from medseg.ops.device import resolve_device

LABELS = {"background": 0, "object": 1}
PROMPT_KINDS = ("box", "point")
#: MedSAM's threshold on the sigmoid probability
THRESHOLD = 0.5
#: answers to a prompt: SAM's single mask, then its three multimask outputs
ANSWERS = 4
#: image embeddings kept for slices seen again (a prompt session's next click on the same
#: slice runs only the decoder); 4 MB each for ViT-B
EMBEDDINGS_KEPT = 16


def model_info(folder: SamFolder, config: SamConfig | None = None) -> ModelInfo:
    details: dict[str, Any] = {
        "variant": folder.variant, "variant_description": VARIANTS[folder.variant],
        "checkpoint": folder.checkpoint.name, "licence": folder.licence,
        "url": folder.url, "intensity": folder.intensity, "slice_axis": folder.slice_axis,
        "propagate": folder.propagate, "pipeline": "MedSAM_Inference.py (2-D, per slice)"}
    if config is not None:
        details["network"] = config.summary()
    return ModelInfo(name=folder.name, format=FORMAT, labels=dict(LABELS), spatial_dims=3,
                     in_channels=1, source=f"{folder.source or folder.variant} at "
                                           f"{folder.path}",
                     details=details, prompts=PROMPT_KINDS,
                     answers=config.num_mask_tokens if config is not None else ANSWERS)


def describe(path: Path, **options: Any) -> ModelInfo:
    """Metadata only: the checkpoint is not opened."""
    return model_info(read_folder(Path(path), **options))


@dataclass
class Prepared:
    image: np.ndarray | None  # MedSAM's uint8 volume, X, Y, Z
    plan: SlicePlan
    shape: tuple[int, ...]
    #: slice index -> object probability (rows, columns image of that slice)
    done: dict[int, np.ndarray] = field(default_factory=dict)
    #: first slice of the slab ``predict`` returns
    slab_start: int = 0
    #: the answer on the prompted slices (0: the single mask; see the module docstring)
    answer: int = 0


class SamModel:
    """A loaded SAM network with MedSAM's inference pipeline."""

    def __init__(self, folder: SamFolder, device: Any = None) -> None:
        self.folder = folder
        if folder.sha256 and sha256_file(folder.checkpoint) != folder.sha256:
            raise InputError(folder.checkpoint, "sha256 differs from the one sam.json records "
                                                "(a changed or damaged download)")
        state = read_state_dict(folder.checkpoint)
        self.config = config_from_state_dict(state, folder.checkpoint, folder.architecture)
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.net = SamNetwork(self.config)
        load_state(self.net, state, folder.checkpoint)
        del state
        self.net.eval().to(self.device)
        self.info = model_info(folder, self.config)
        self._embeddings: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    # ---- one slice -------------------------------------------------------------------------
    def embed(self, image_uint8: np.ndarray) -> torch.Tensor:
        """The image embedding of one ``rows, columns`` ``uint8`` slice image (the last
        :data:`EMBEDDINGS_KEPT` are reused when the same pixels come again)."""
        image = np.ascontiguousarray(image_uint8, dtype=np.uint8)
        key = hashlib.blake2b(image.tobytes(), digest_size=16,
                              person=str(image.shape).encode()[:16]).digest()
        if key in self._embeddings:
            self._embeddings.move_to_end(key)
            return self._embeddings[key]
        emb = self.net.embed(slice_input(image, self.config.image_size).to(self.device))
        self._embeddings[key] = emb
        if len(self._embeddings) > EMBEDDINGS_KEPT:
            self._embeddings.popitem(last=False)
        return emb

    def _to_input(self, xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Pixel coordinates of a ``shape = (H, W)`` image -> network-input pixels."""
        h, w = shape
        return xy / np.array([w, h] * (xy.shape[-1] // 2)) * self.config.image_size

    def low_res_logits(self, embedding: torch.Tensor, shape: tuple[int, int],
                       boxes: np.ndarray | None = None, points: np.ndarray | None = None,
                       scaled: bool = False, answer: int = 0) -> torch.Tensor:
        """``B, 1, 256, 256`` logits: one per box (boxes ``B, 4`` as ``x0, y0, x1, y1``), each
        with every point (``N, 3`` as ``x, y, label``), or one for the points alone.
        Coordinates are slice-image pixels, or network-input pixels with ``scaled``;
        ``answer`` as :meth:`.network.SamNetwork.mask_logits`."""
        box_t = pts = None
        count = 1
        if boxes is not None and len(boxes):
            b = np.asarray(boxes, dtype=float).reshape(-1, 4)
            b = b if scaled else self._to_input(b, shape)
            box_t = torch.as_tensor(b, dtype=torch.float, device=self.device)
            count = b.shape[0]
        if points is not None and len(points):
            p = np.asarray(points, dtype=float).reshape(-1, 3)
            xy = p[:, :2] if scaled else self._to_input(p[:, :2], shape)
            xy_t = torch.as_tensor(xy, dtype=torch.float, device=self.device)
            lab_t = torch.as_tensor(p[:, 2], dtype=torch.float, device=self.device)
            pts = (xy_t[None].expand(count, -1, -1), lab_t[None].expand(count, -1))
        if box_t is None and pts is None:
            raise InputError("prompts", "a slice needs a box or a point")
        return self.net.mask_logits(embedding, box_t, pts, answer)

    def probability(self, logits: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
        """MedSAM's object probability on the slice: sigmoid, bilinear resize to ``shape``,
        the maximum over the prompts (boxes) of the slice."""
        prob = F.interpolate(torch.sigmoid(logits), size=shape, mode="bilinear",
                             align_corners=False)
        return prob.amax(dim=(0, 1)).float().cpu().numpy()

    def segment_slice(self, image_uint8: np.ndarray, boxes: np.ndarray | None = None,
                      points: np.ndarray | None = None, scaled: bool = False,
                      answer: int = 0) -> np.ndarray:
        """Object probability of one slice image for its prompts."""
        shape = image_uint8.shape
        emb = self.embed(image_uint8)
        return self.probability(self.low_res_logits(emb, shape, boxes, points, scaled, answer),
                                shape)

    # ---- the protocol ----------------------------------------------------------------------
    def intensity_mode(self, data: np.ndarray) -> str:
        """The folder's intensity mode, ``auto`` resolved for ``data``."""
        mode = self.folder.intensity
        return auto_intensity(data) if mode == "auto" else mode

    def prepare(self, volume, settings) -> Prepared:
        prompts = getattr(settings, "prompts", None)
        if not prompts:
            raise InputError("input", f"model {self.info.name!r} segments what it is pointed "
                                      "at: give a box or points")
        if volume.spatial_ndim != 3:
            raise InputError("input", "MedSAM here segments 3-D volumes slice by slice")
        data = np.asarray(volume.array[0])
        plan = plan_slices(prompts, data.shape, volume.affine, self.folder.slice_axis,
                           self.folder.propagate)
        image = volume_to_uint8(data, self.intensity_mode(data))
        return Prepared(image, plan, tuple(data.shape), answer=int(prompts.answer))

    def _seed(self, prepared: Prepared, seed: SliceSeed) -> None:
        assert prepared.image is not None
        img = slice_image(prepared.image, prepared.plan.axis, seed.index)
        boxes = np.array(seed.boxes, dtype=float) if seed.boxes else None
        points = np.array(seed.points, dtype=float) if seed.points else None
        prepared.done[seed.index] = self.segment_slice(img, boxes, points,
                                                       answer=prepared.answer)

    def _propagate(self, prepared: Prepared, start: int, step: int) -> None:
        axis = prepared.plan.axis
        last, s = prepared.shape[axis] - 1, start
        while 0 <= s + step <= last and (s + step) not in prepared.done:
            box = nearest_upsample_box(prepared.done[s] > THRESHOLD, self.config.image_size)
            if box is None:
                return
            s += step
            assert prepared.image is not None
            img = slice_image(prepared.image, axis, s)
            prepared.done[s] = self.segment_slice(img, box[None], None, scaled=True)

    def predict(self, prepared: Prepared, settings) -> torch.Tensor:
        """``2, *slab`` (background, object) probabilities on the slab of segmented slices;
        the slab's place is kept in ``prepared``."""
        if prepared.image is None:
            raise InputError("input", "this prepared image was already predicted")
        for seed in prepared.plan.seeds:
            self._seed(prepared, seed)
        for seed in prepared.plan.seeds:
            if seed.propagate:
                self._propagate(prepared, seed.index, 1)
                self._propagate(prepared, seed.index, -1)
        prepared.image = None
        axis = prepared.plan.axis
        first, last = min(prepared.done), max(prepared.done)
        shape = list(prepared.shape)
        shape[axis] = last - first + 1
        obj = np.zeros(shape, dtype=np.float32)
        for s, prob in prepared.done.items():
            put_slice(obj, axis, s - first, prob)
        prepared.done, prepared.slab_start = {}, first
        obj_t = torch.from_numpy(obj)
        return torch.stack([1.0 - obj_t, obj_t])

    def restore(self, prepared: Prepared, probabilities: torch.Tensor,
                settings) -> Prediction:
        axis, first = prepared.plan.axis, prepared.slab_start
        region: list[slice] = [slice(None)] * 3
        region[axis] = slice(first, first + probabilities.shape[1 + axis])
        channels = np.zeros(prepared.shape, dtype=np.uint8)
        channels[tuple(region)] = (probabilities[1] > THRESHOLD).numpy()
        if not getattr(settings, "probabilities", False):
            return Prediction(channels)
        probs = np.zeros((2, *prepared.shape), dtype=np.float32)
        probs[0] = 1.0
        probs[tuple([slice(None), *region])] = probabilities.numpy()
        return Prediction(channels, probs)

    def memory_estimate(self, volume) -> int:
        """Peak bytes beyond the segmenter's input-grid arrays: a float64 copy and the uint8
        volume, two float32 maps of the slab, the weights, and one global-attention chunk plus
        the 1024 x 1024 input and its resize."""
        voxels = int(np.prod(volume.spatial_shape))
        weights = sum(p.numel() for p in self.net.parameters()) * 4
        size = self.config.image_size
        return voxels * (8 + 1 + 8) + weights + (1 << 28) + size * size * (8 * 3 + 4 * 3)


def load(path: Path, *, registry: Any = None, device: Any = None, intensity: Any = None,
         slice_axis: Any = None, propagate: Any = None) -> SamModel:
    """The format's loader; options as :data:`.folder.OPTIONS` (defaults from sam.json)."""
    folder = read_folder(Path(path), intensity=intensity, slice_axis=slice_axis,
                         propagate=propagate)
    return SamModel(folder, device)
