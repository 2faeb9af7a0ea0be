"""SAM-Med3D as a promptable :class:`~medseg.models.base.SegmentationModel`.

``prepare`` cuts the 1.5 mm 128^3 cube around the points (:mod:`.pipeline`); ``predict``
encodes it once, then feeds the points one at a time, each decoder pass getting every point
so far and the previous pass's low-resolution logits (zeros before the first), exactly as the
authors' ``sam_model_infer`` replays clicks; the last logits are upsampled trilinearly to the
cube and passed through a sigmoid. ``restore`` puts the object probability back onto the
input's grid by nearest neighbour (0 outside the cube).

A mask prompt (the previous result, to refine) centres the cube on the mask and the points,
and replaces the replay: one decoder pass with every point and the mask as the previous
logits (+10 inside, -10 outside, averaged over each 4^3 block of the cube). That conversion is
medseg's (the authors feed back their own logits, which a mask no longer holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medseg.errors import InputError
from medseg.models.base import InferenceSettings, ModelInfo, Prediction
from medseg.models.sammed3d.checkpoint import read_state_dict
from medseg.models.sammed3d.folder import CROP, FORMAT, SPACING_MM, Definition, read_definition
from medseg.models.sammed3d.network import SamMed3D, build
from medseg.models.sammed3d.pipeline import Crop, crop_for, to_input
from medseg.ops.device import resolve_device
from medseg.volume import Volume

LABELS = {"background": 0, "object": 1}
PROMPTS = ("point", "mask")
#: logit magnitude a mask prompt is given (medseg's choice; see the module docstring)
MASK_LOGIT = 10.0


def model_info(d: Definition, details: dict[str, Any] | None = None) -> ModelInfo:
    return ModelInfo(
        name=d.name, format=FORMAT, labels=LABELS, spatial_dims=3, in_channels=1,
        spacing=SPACING_MM, patch_size=(CROP,) * 3, modality=None, channel_names=("image",),
        source=str(d.folder),
        details={"licence": d.licence, "origin": d.source, "checkpoint": d.checkpoint.name,
                 "description": d.description, **(details or {})},
        prompts=PROMPTS)


def describe(path: Path) -> ModelInfo:
    """Metadata only: the checkpoint is not opened."""
    return model_info(read_definition(Path(path)))


@dataclass
class Prepared:
    crop: Crop
    #: the last decoder pass's logits ``1, 1, S/4, S/4, S/4`` (set by ``predict``)
    low_res_logits: torch.Tensor | None = None


def mask_logits(mask: np.ndarray, low_res: int) -> torch.Tensor:
    """A boolean cube -> ``1, 1, low_res^3`` logits (+-:data:`MASK_LOGIT`, block-averaged)."""
    cube = torch.from_numpy(np.ascontiguousarray(mask)).float()[None, None]
    fraction = F.adaptive_avg_pool3d(cube, low_res)
    return MASK_LOGIT * (2 * fraction - 1)


class SamMed3DModel:
    """A loaded SAM-Med3D checkpoint."""

    def __init__(self, definition: Definition, device: Any = None) -> None:
        self.definition = definition
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        state = read_state_dict(definition.checkpoint)
        try:
            self.net: SamMed3D = build(state)
        except ValueError as exc:
            raise InputError(definition.checkpoint,
                             f"is not a SAM-Med3D checkpoint ({exc})") from None
        arch = self.net.arch
        if arch.img_size != CROP:
            raise InputError(definition.checkpoint, f"takes {arch.img_size}^3 crops; the "
                                                    f"SAM-Med3D pipeline cuts {CROP}^3")
        self.net.to(self.device)
        self.info = model_info(definition, {"architecture": arch.to_dict()})

    def _device(self, settings: InferenceSettings) -> torch.device:
        wanted = getattr(settings, "device", None)
        return self.device if wanted in (None, "", "auto") else resolve_device(wanted)

    def prepare(self, volume: Volume, settings: InferenceSettings) -> Prepared:
        prompts = getattr(settings, "prompts", None)
        if prompts is None or not prompts.points:
            raise InputError("prompts", "SAM-Med3D needs at least one point")
        if prompts.boxes:
            raise InputError("prompts", "SAM-Med3D takes points (and a mask), not boxes")
        return Prepared(crop_for(volume, prompts, size=CROP, spacing=SPACING_MM))

    @torch.no_grad()
    def low_res_logits(self, prepared: Prepared, settings: InferenceSettings) -> torch.Tensor:
        """The decoder's logits after the last point (``1, 1, S/4, S/4, S/4``, on the CPU)."""
        device = self._device(settings)
        net = self.net.to(device)
        crop = prepared.crop
        embedding = net.embed(crop.image.to(device))
        coords = torch.from_numpy(crop.points).to(device)[None]
        labels = torch.from_numpy(crop.labels).to(device)[None]
        size = CROP // 4
        if crop.mask is not None:
            logits = net.decode(embedding, coords, labels, mask_logits(crop.mask, size).to(device))
        else:
            logits = torch.zeros(1, 1, size, size, size, device=device)
            for n in range(1, len(crop.points) + 1):
                logits = net.decode(embedding, coords[:, :n], labels[:, :n], logits)
        prepared.low_res_logits = logits.float().cpu()
        return prepared.low_res_logits

    def predict(self, prepared: Prepared, settings: InferenceSettings) -> torch.Tensor:
        """``background, object`` probabilities on the 128^3 cube."""
        logits = self.low_res_logits(prepared, settings)
        full = F.interpolate(logits, size=(CROP,) * 3, mode="trilinear", align_corners=False)
        obj = torch.sigmoid(full[0, 0])
        return torch.stack([1 - obj, obj])

    def restore(self, prepared: Prepared, probabilities: torch.Tensor,
                settings: InferenceSettings) -> Prediction:
        obj = to_input(probabilities[1].numpy(), prepared.crop)
        channels = (obj > 0.5).astype(np.uint8)
        if not getattr(settings, "probabilities", False):
            return Prediction(channels)
        return Prediction(channels, np.stack([1 - obj, obj]).astype(np.float32))


def load(path: Path, *, registry: Any = None, device: Any = None) -> SamMed3DModel:
    return SamMed3DModel(read_definition(Path(path)), device)
