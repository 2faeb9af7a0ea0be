"""Small building blocks shared by SAM's three parts (state-dict names as SAM's own).

``LayerNorm2d`` normalises a ``B, C, H, W`` map over its channels at every pixel;
``FeedForward`` is the two-layer perceptron of a transformer block (``lin1``, ``lin2``);
``HeadMLP`` is the mask decoder's small ReLU perceptron (``layers.N``).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F


class LayerNorm2d(nn.Module):
    """Channel-wise layer norm of a ``B, C, H, W`` map (ConvNeXt-style, eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class FeedForward(nn.Module):
    """``lin2(act(lin1(x)))``: GELU in the image encoder, ReLU in the two-way transformer."""

    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class HeadMLP(nn.Module):
    """``depth`` linear layers with ReLU between them (none after the last)."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int, depth: int) -> None:
        super().__init__()
        sizes = [dim_in] + [hidden] * (depth - 1) + [dim_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x)
        return x
