"""SAM-Med3D's image encoder: a 3-D ViT (ViTDet style) over 16^3 patches.

Layout: input ``B, 1, D, H, W`` (the 128^3 crop), tokens ``B, d, h, w, C`` (``8^3`` for a 128^3
crop), output ``B, C_out, d, h, w``. Blocks attend inside cubic windows (zero-padded up to a
multiple of the window, the padding attended to as well, as the authors' blocks do) or over
the whole grid (the "global" blocks), with decomposed relative position terms (Li et al.,
MViTv2, 2022) placed as the authors' 3-D port places them (see :class:`RelPosAttention`).
Parameter names follow the authors' modules so that their state dicts load unchanged (Wang et
al., SAM-Med3D, 2023).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medseg.models.sam_blocks import ChannelLayerNorm, FeedForward


class PatchEmbed(nn.Module):
    """Non-overlapping ``p^3`` patches -> tokens ``B, d, h, w, C``."""

    def __init__(self, patch: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 4, 1)


def _relative_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """``size, size, head_dim`` embeddings of the offset ``q - k`` along one axis."""
    if table.shape[0] != 2 * size - 1:
        raise ValueError(f"relative position table of {table.shape[0]} rows does not fit "
                         f"{size} positions")
    idx = torch.arange(size, device=table.device)
    return table[idx[:, None] - idx[None, :] + size - 1]


class RelPosAttention(nn.Module):
    """Multi-head self-attention over a ``d, h, w`` token cube (``d = h = w``) with decomposed
    relative position terms (``rel_pos_d``, ``rel_pos_h``, ``rel_pos_w``: ``2n-1, head_dim``
    each), added as the authors' code adds them (see ``forward``)."""

    def __init__(self, dim: int, heads: int, size: tuple[int, int, int]) -> None:
        super().__init__()
        self.heads = heads
        head_dim = dim // heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_d = nn.Parameter(torch.zeros(2 * size[0] - 1, head_dim))
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * size[1] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * size[2] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w, c = x.shape
        n = d * h * w
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).reshape(3, b * self.heads, n, -1).unbind(0)
        logits = (q * self.scale) @ k.transpose(-2, -1)
        # relative terms: for each query, one score per key offset along each axis
        qc = q.reshape(b * self.heads, d, h, w, -1)
        along_d = torch.einsum("bdhwc,dkc->bdhwk", qc, _relative_table(self.rel_pos_d, d))
        along_h = torch.einsum("bdhwc,hkc->bdhwk", qc, _relative_table(self.rel_pos_h, h))
        along_w = torch.einsum("bdhwc,wkc->bdhwk", qc, _relative_table(self.rel_pos_w, w))
        # The terms are added where the authors' indexing puts them, which is not along the
        # key axis each was computed for: every term's key offset lands on the key's last
        # axis, the h term's query-w on the key's first axis and the w term's on its second
        # (their ``rel[:, :, :, :, None, None]`` etc. on a 5-D tensor). The published
        # weights were trained so; a cubic grid (d = h = w) makes it broadcast.
        logits = logits.view(b * self.heads, d, h, w, d, h, w)
        logits = (logits + along_d.unsqueeze(4).unsqueeze(4) + along_h.unsqueeze(3).unsqueeze(5)
                  + along_w.unsqueeze(3).unsqueeze(3)).view(b * self.heads, n, n)
        out = logits.softmax(dim=-1) @ v
        out = out.view(b, self.heads, d, h, w, -1).permute(0, 2, 3, 4, 1, 5).reshape(b, d, h,
                                                                                    w, c)
        return self.proj(out)


def _to_windows(x: torch.Tensor, win: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """``B, d, h, w, C`` -> ``B * windows, win, win, win, C`` (zero padding at the far end)."""
    b, d, h, w, c = x.shape
    pads = [(-s) % win for s in (d, h, w)]
    if any(pads):
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    dp, hp, wp = d + pads[0], h + pads[1], w + pads[2]
    x = x.view(b, dp // win, win, hp // win, win, wp // win, win, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, win, win, win, c), (dp, hp, wp)


def _from_windows(x: torch.Tensor, win: int, padded: tuple[int, int, int],
                  size: tuple[int, int, int]) -> torch.Tensor:
    dp, hp, wp = padded
    b = x.shape[0] // ((dp // win) * (hp // win) * (wp // win))
    x = x.view(b, dp // win, hp // win, wp // win, win, win, win, -1)
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, dp, hp, wp, -1)
    d, h, w = size
    return x[:, :d, :h, :w].contiguous()


class EncoderBlock(nn.Module):
    """Pre-norm transformer block; ``window`` 0 attends over the whole grid."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, window: int,
                 grid: tuple[int, int, int]) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RelPosAttention(dim, heads, (window,) * 3 if window else grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FeedForward(dim, mlp_dim, nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.window:
            size = (y.shape[1], y.shape[2], y.shape[3])
            windows, padded = _to_windows(y, self.window)
            y = _from_windows(self.attn(windows), self.window, padded, size)
        else:
            y = self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class ImageEncoder3D(nn.Module):
    """Patch embedding + absolute position embedding + blocks + a convolutional neck."""

    def __init__(self, *, img_size: int, patch: int, dim: int, depth: int, heads: int,
                 mlp_dim: int, window: int, global_blocks: tuple[int, ...],
                 out_dim: int) -> None:
        super().__init__()
        self.img_size = img_size
        n = img_size // patch
        grid = (n, n, n)
        self.patch_embed = PatchEmbed(patch, 1, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, n, n, n, dim))
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, heads, mlp_dim, 0 if i in global_blocks else window, grid)
            for i in range(depth))
        self.neck = nn.Sequential(
            nn.Conv3d(dim, out_dim, kernel_size=1, bias=False),
            ChannelLayerNorm(out_dim),
            nn.Conv3d(out_dim, out_dim, kernel_size=3, padding=1, bias=False),
            ChannelLayerNorm(out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 4, 1, 2, 3))
