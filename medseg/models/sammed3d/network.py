"""The whole SAM-Med3D network, its sizes read from a state dict's shapes.

A checkpoint says its own sizes: the crop and patch from ``pos_embed`` and the patch
convolution, the encoder width, depth, heads, window and global blocks from the blocks'
relative-position tables, the prompt width from the neck, the decoder's depth, MLP width and
mask tokens from its layers. Nothing is taken on trust: a state dict whose keys or shapes do
not form this architecture is refused (strict loading), naming the first mismatch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from medseg.models.sammed3d.decoder import DECODER_HEADS, MaskDecoder3D
from medseg.models.sammed3d.encoder import ImageEncoder3D
from medseg.models.sammed3d.prompt_encoder import PromptEncoder3D

_BLOCK = re.compile(r"^image_encoder\.blocks\.(\d+)\.")
_DECODER_LAYER = re.compile(r"^mask_decoder\.transformer\.layers\.(\d+)\.")
_MASK_HEAD = re.compile(r"^mask_decoder\.output_hypernetworks_mlps\.(\d+)\.")
_IOU_LAYER = re.compile(r"^mask_decoder\.iou_prediction_head\.layers\.(\d+)\.weight$")


@dataclass(frozen=True)
class Architecture:
    """The sizes of one SAM-Med3D network (the published ViT-B: 768 wide, 12 blocks, 12 heads,
    global blocks 2, 5, 8, 11, window 14, prompt width 384, 128^3 crops of 16^3 patches)."""

    img_size: int
    patch: int
    dim: int
    depth: int
    heads: int
    mlp_dim: int
    window: int
    global_blocks: tuple[int, ...]
    prompt_dim: int
    decoder_depth: int
    decoder_mlp_dim: int
    mask_tokens: int
    iou_hidden: int
    iou_depth: int
    mask_chans: int

    @property
    def grid(self) -> int:
        return self.img_size // self.patch

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()}


def _count(keys: list[str], pattern: re.Pattern[str]) -> int:
    found = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise ValueError(f"no {key!r} in the state dict")
    return tuple(state[key].shape)


def architecture_of(state: Mapping[str, torch.Tensor]) -> Architecture:
    """Sizes from the shapes of a SAM-Med3D state dict; ``ValueError`` says what is missing
    or inconsistent."""
    keys = list(state)
    dim, _, patch, *_ = _shape(state, "image_encoder.patch_embed.proj.weight")
    _, grid, *_ = _shape(state, "image_encoder.pos_embed")
    depth = _count(keys, _BLOCK)
    if depth == 0:
        raise ValueError("no image_encoder.blocks in the state dict")
    global_blocks, windows, head_dim = [], set(), None
    for i in range(depth):
        rows, head_dim = _shape(state, f"image_encoder.blocks.{i}.attn.rel_pos_d")
        if rows == 2 * grid - 1:
            global_blocks.append(i)
        else:
            windows.add((rows + 1) // 2)
    if len(windows) > 1 or head_dim is None or dim % head_dim:
        raise ValueError(f"encoder blocks have inconsistent windows {sorted(windows)} or head "
                         f"width {head_dim} for width {dim}")
    mlp_dim = _shape(state, "image_encoder.blocks.0.mlp.lin1.weight")[0]
    prompt_dim = _shape(state, "image_encoder.neck.0.weight")[0]
    mask_tokens = _count(keys, _MASK_HEAD)
    iou_depth = _count(keys, _IOU_LAYER)
    if prompt_dim % 48:
        raise ValueError(f"prompt width {prompt_dim} is not a multiple of 48 (3 Fourier "
                         f"blocks, {DECODER_HEADS} heads at half width, 8x fewer mask channels)")
    return Architecture(
        img_size=grid * patch, patch=patch, dim=dim, depth=depth, heads=dim // head_dim,
        mlp_dim=mlp_dim, window=windows.pop() if windows else 0,
        global_blocks=tuple(global_blocks), prompt_dim=prompt_dim,
        decoder_depth=_count(keys, _DECODER_LAYER),
        decoder_mlp_dim=_shape(state, "mask_decoder.transformer.layers.0.mlp.lin1.weight")[0],
        mask_tokens=mask_tokens,
        iou_hidden=_shape(state, "mask_decoder.iou_prediction_head.layers.0.weight")[0],
        iou_depth=iou_depth,
        mask_chans=_shape(state, "prompt_encoder.mask_downscaling.3.weight")[0],
    )


class SamMed3D(nn.Module):
    """``image_encoder``, ``prompt_encoder`` and ``mask_decoder``, named as in the authors'
    checkpoints."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        grid = (arch.grid,) * 3
        self.image_encoder = ImageEncoder3D(
            img_size=arch.img_size, patch=arch.patch, dim=arch.dim, depth=arch.depth,
            heads=arch.heads, mlp_dim=arch.mlp_dim, window=arch.window,
            global_blocks=arch.global_blocks, out_dim=arch.prompt_dim)
        self.prompt_encoder = PromptEncoder3D(dim=arch.prompt_dim, grid=grid,
                                              crop=(arch.img_size,) * 3,
                                              mask_chans=arch.mask_chans)
        self.mask_decoder = MaskDecoder3D(
            dim=arch.prompt_dim, depth=arch.decoder_depth, mlp_dim=arch.decoder_mlp_dim,
            mask_tokens=arch.mask_tokens, iou_hidden=arch.iou_hidden, iou_depth=arch.iou_depth)

    @torch.no_grad()
    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """``1, 1, S, S, S`` normalised crop -> image embedding ``1, C, g, g, g``."""
        return self.image_encoder(image)

    @torch.no_grad()
    def decode(self, embedding: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor,
               mask_logits: torch.Tensor | None) -> torch.Tensor:
        """One decoder pass: points ``1, N, 3`` (crop voxel indices) with labels ``1, N``, and
        the previous low-resolution logits ``1, 1, 4g, 4g, 4g`` -> new low-resolution logits."""
        sparse = self.prompt_encoder.points(coords, labels)
        dense = self.prompt_encoder.dense(mask_logits, sparse.shape[0])
        return self.mask_decoder(embedding, self.prompt_encoder.dense_pe(), sparse, dense)


def build(state: Mapping[str, torch.Tensor]) -> SamMed3D:
    """The network for ``state`` with its weights loaded strictly (``ValueError`` on any
    missing, unexpected or misshapen tensor)."""
    net = SamMed3D(architecture_of(state))
    try:
        net.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise ValueError(lines[1] if len(lines) > 1 else lines[0]) from None
    return net.eval()
