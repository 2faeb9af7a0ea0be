"""SAM's prompt encoder: points and box corners as random Fourier features of their position
plus a learned embedding of their kind; a mask prompt (or its absence) as a dense map.

Coordinates are pixels of the square model input (``image_size``, 1024), ``x`` (column) first;
SAM shifts them by half a pixel to the pixel centre. Point labels: 1 object, 0 background, -1
padding (a point-only prompt gets one padding point, as SAM's own encoder adds).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from medseg.models.sam.config import SamConfig
from medseg.models.sam_blocks import ChannelLayerNorm


class RandomFourierPositions(nn.Module):
    """Positions in [0, 1]^2 -> ``[sin, cos](2 pi (2 p - 1) @ G)`` with a fixed Gaussian ``G``
    (Tancik et al. 2020); ``G`` is a buffer stored in the checkpoint."""

    positional_encoding_gaussian_matrix: torch.Tensor

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, features))

    def encode(self, unit_xy: torch.Tensor) -> torch.Tensor:
        proj = (2 * unit_xy - 1) @ self.positional_encoding_gaussian_matrix
        proj = 2 * math.pi * proj
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """``C, h, w`` encoding of the pixel centres of an ``h x w`` grid."""
        device = self.positional_encoding_gaussian_matrix.device
        ones = torch.ones((h, w), device=device, dtype=torch.float32)
        ys = (ones.cumsum(dim=0) - 0.5) / h
        xs = (ones.cumsum(dim=1) - 0.5) / w
        return self.encode(torch.stack([xs, ys], dim=-1)).permute(2, 0, 1)

    def points(self, xy: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``B, N, C`` encoding of pixel coordinates ``xy`` (``B, N, 2``) in an image of
        ``size = (h, w)``."""
        unit = xy.clone().float()
        unit[..., 0] = unit[..., 0] / size[1]
        unit[..., 1] = unit[..., 1] / size[0]
        return self.encode(unit)


class PromptEncoder(nn.Module):
    """Sparse (points, box corners) and dense (mask) prompt embeddings for the mask decoder."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        dim = cfg.prompt_dim
        self.embed_dim = dim
        self.input_size = (cfg.image_size, cfg.image_size)
        self.embedding_size = (cfg.grid, cfg.grid)
        self.pe_layer = RandomFourierPositions(dim // 2)
        #: 0 background point, 1 object point, 2 box top-left, 3 box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, dim)
        c = cfg.mask_in_chans
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, c // 4, kernel_size=2, stride=2), ChannelLayerNorm(c // 4), nn.GELU(),
            nn.Conv2d(c // 4, c, kernel_size=2, stride=2), ChannelLayerNorm(c), nn.GELU(),
            nn.Conv2d(c, dim, kernel_size=1))
        self.no_mask_embed = nn.Embedding(1, dim)

    def _kind(self, i: int) -> torch.Tensor:
        """The learned embedding of point kind ``i`` (``1, C``)."""
        return cast(nn.Embedding, self.point_embeddings[i]).weight

    def dense_positions(self) -> torch.Tensor:
        """``1, C, G, G`` positional encoding of the image embedding's grid."""
        return self.pe_layer.grid(*self.embedding_size).unsqueeze(0)

    def _points(self, xy: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        xy = xy + 0.5
        if pad:
            xy = torch.cat([xy, torch.zeros((xy.shape[0], 1, 2), device=xy.device)], dim=1)
            labels = torch.cat([labels, -torch.ones((labels.shape[0], 1),
                                                    device=labels.device)], dim=1)
        emb = self.pe_layer.points(xy, self.input_size)
        emb[labels == -1] = 0.0
        emb[labels == -1] += self.not_a_point_embed.weight
        emb[labels == 0] += self._kind(0)
        emb[labels == 1] += self._kind(1)
        return emb

    def _boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        emb = self.pe_layer.points(corners, self.input_size)
        emb[:, 0, :] += self._kind(2)
        emb[:, 1, :] += self._kind(3)
        return emb

    def forward(self, points: tuple[torch.Tensor, torch.Tensor] | None,
                boxes: torch.Tensor | None,
                masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``points``: (``B, N, 2`` xy, ``B, N`` labels); ``boxes``: ``B, 4`` (x0, y0, x1, y1);
        ``masks``: ``B, 1, 4G, 4G`` logits. Returns sparse ``B, n, C`` and dense
        ``B, C, G, G`` embeddings."""
        device = self._kind(0).device
        batch = next((t.shape[0] for t in (points[0] if points else None, boxes, masks)
                      if t is not None), 1)
        sparse = torch.empty((batch, 0, self.embed_dim), device=device)
        if points is not None:
            sparse = torch.cat([sparse, self._points(points[0], points[1], boxes is None)],
                               dim=1)
        if boxes is not None:
            sparse = torch.cat([sparse, self._boxes(boxes)], dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                batch, -1, *self.embedding_size)
        return sparse, dense
