"""Small building blocks shared by SAM-Med3D's encoder, prompt encoder and decoder."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn
from torch.nn import functional as F


class ChannelLayerNorm3d(nn.Module):
    """Layer norm over the channel axis of ``B, C, D, H, W`` (eps 1e-6, biased variance)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None, None] * x + self.bias[:, None, None, None]


class FeedForward(nn.Module):
    """``lin2(act(lin1(x)))``."""

    def __init__(self, dim: int, hidden: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class DeepMLP(nn.Module):
    """``layers`` linear maps with ReLU between them (the decoder's heads)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == last else F.relu(layer(x))
        return x
