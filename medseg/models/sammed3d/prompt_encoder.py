"""SAM-Med3D's prompt encoder: points -> sparse tokens, a low-resolution mask -> dense map.

Positions are encoded with random Fourier features (Tancik et al., 2020, as in SAM): a point
``p`` (voxel index of the crop, shifted to the voxel centre and divided by the crop size) maps
to ``[sin(2 pi (2p-1) G), cos(...), sin(...)]`` with the fixed ``3 x C/3`` matrix ``G`` stored in
the checkpoint. The sine block appears twice: that is how the authors' encoder fills ``C``.
Their dense grid encoding takes its first coordinate along the grid's *second* axis and its
second along the first; it is reproduced as it is, since the weights were trained with it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medseg.models.sam_blocks import ChannelLayerNorm

#: point labels as the decoder knows them
PAD, NEGATIVE, POSITIVE = -1, 0, 1


class FourierPositions(nn.Module):
    """Random spatial frequencies ``positional_encoding_gaussian_matrix``: ``3, C/3``."""

    def __init__(self, feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(3, feats))

    def encode(self, unit: torch.Tensor) -> torch.Tensor:
        """``..., 3`` positions in [0, 1] -> ``..., C``."""
        angles = 2 * math.pi * ((2 * unit - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([torch.sin(angles), torch.cos(angles), torch.sin(angles)], dim=-1)

    def grid(self, size: tuple[int, int, int]) -> torch.Tensor:
        """``C, X, Y, Z`` encoding of every cell centre of a ``size`` grid."""
        device = self.positional_encoding_gaussian_matrix.device
        cells = [(torch.arange(n, device=device, dtype=torch.float32) + 0.5) for n in size]
        along0, along1, along2 = torch.meshgrid(*cells, indexing="ij")
        # the authors' order: first coordinate runs along axis 1 (divided by size[0]),
        # second along axis 0 (divided by size[1])
        unit = torch.stack([along1 / size[0], along0 / size[1], along2 / size[2]], dim=-1)
        return self.encode(unit).permute(3, 0, 1, 2)


class PromptEncoder3D(nn.Module):
    def __init__(self, *, dim: int, grid: tuple[int, int, int],
                 crop: tuple[int, int, int], mask_chans: int = 16) -> None:
        super().__init__()
        self.dim, self.grid, self.crop = dim, grid, crop
        self.pe_layer = FourierPositions(dim // 3)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(2))
        self.not_a_point_embed = nn.Embedding(1, dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv3d(1, mask_chans // 4, kernel_size=2, stride=2),
            ChannelLayerNorm(mask_chans // 4),
            nn.GELU(),
            nn.Conv3d(mask_chans // 4, mask_chans, kernel_size=2, stride=2),
            ChannelLayerNorm(mask_chans),
            nn.GELU(),
            nn.Conv3d(mask_chans, dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, dim)

    def dense_pe(self) -> torch.Tensor:
        """``1, C, *grid`` position encoding of the image embedding."""
        return self.pe_layer.grid(self.grid).unsqueeze(0)

    def points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``B, N, 3`` crop voxel indices and ``B, N`` labels (:data:`POSITIVE`,
        :data:`NEGATIVE`) -> ``B, N + 1, C`` tokens (a padding token closes the list)."""
        b = coords.shape[0]
        coords = torch.cat([coords.float() + 0.5, coords.new_zeros(b, 1, 3).float()], dim=1)
        labels = torch.cat([labels.float(), labels.new_full((b, 1), PAD).float()], dim=1)
        size = torch.tensor(self.crop, dtype=torch.float32, device=coords.device)
        tokens = self.pe_layer.encode(coords / size)
        pad = (labels == PAD)[..., None]
        tokens = torch.where(pad, self.not_a_point_embed.weight, tokens)
        tokens = tokens + (labels == NEGATIVE)[..., None] * self.point_embeddings[0].weight
        return tokens + (labels == POSITIVE)[..., None] * self.point_embeddings[1].weight

    def dense(self, mask_logits: torch.Tensor | None, batch: int = 1) -> torch.Tensor:
        """``B, 1, 4*grid`` mask logits -> ``B, C, *grid`` (no mask: the learnt constant)."""
        if mask_logits is not None:
            return self.mask_downscaling(mask_logits)
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1, 1).expand(batch, -1, *self.grid)
