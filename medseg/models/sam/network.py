"""The three parts of SAM under SAM's own module names, so a SAM/MedSAM state dict loads into
it key for key; and the one forward pass MedSAM's inference makes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from medseg.errors import InputError
from medseg.models.sam.config import SamConfig
from medseg.models.sam.decoder import MaskDecoder
from medseg.models.sam.encoder import ImageEncoder
from medseg.models.sam.prompt_encoder import PromptEncoder

#: SAM keeps its pixel mean/std as non-persistent buffers; some exports still carry them
_IGNORED = ("pixel_mean", "pixel_std")


class SamNetwork(nn.Module):
    """``image_encoder``, ``prompt_encoder``, ``mask_decoder`` (state-dict prefixes as SAM)."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        self.config = cfg
        self.image_encoder = ImageEncoder(cfg)
        self.prompt_encoder = PromptEncoder(cfg)
        self.mask_decoder = MaskDecoder(cfg)

    @torch.no_grad()
    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """``1, 3, S, S`` model input -> ``1, C, G, G`` image embedding."""
        return self.image_encoder(image)

    @torch.no_grad()
    def mask_logits(self, embedding: torch.Tensor, boxes: torch.Tensor | None = None,
                    points: tuple[torch.Tensor, torch.Tensor] | None = None,
                    answer: int = 0) -> torch.Tensor:
        """Low-resolution logits ``B, 1, 4G, 4G`` for ``B`` prompts on one image embedding:
        answer 0 the single-mask output (as MedSAM asks for it), answer k >= 1 the k-th of
        SAM's multimask outputs (``multimask_output=True``, for an ambiguous prompt)."""
        sparse, dense = self.prompt_encoder(points, boxes, None)
        logits, _ = self.mask_decoder(embedding, self.prompt_encoder.dense_positions(),
                                      sparse, dense, multimask=answer > 0)
        return logits if answer == 0 else logits[:, answer - 1:answer]


def load_state(net: SamNetwork, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` strictly; a missing, extra or misshapen tensor is one line naming the
    checkpoint."""
    state = {k: v for k, v in state.items() if k not in _IGNORED}
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        what = (f"lacks {len(missing)} tensor(s) of the SAM architecture it describes (e.g. "
                f"{missing[0]})" if missing else
                f"has {len(extra)} tensor(s) SAM does not have (e.g. {extra[0]})")
        raise InputError(path, what)
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise InputError(path, f"tensor {key} has shape {tuple(value.shape)}, the "
                                   f"architecture expects {tuple(own[key].shape)}")
    net.load_state_dict(state, strict=True)
