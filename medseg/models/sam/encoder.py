"""SAM's image encoder: a plain ViT (ViTDet-style) over 16x16 patches, most blocks attending
within non-overlapping windows, a few globally, every attention with decomposed relative
positions (MViTv2), then a convolutional neck to the prompt width.

Layout: input ``B, 3, S, S`` (``S`` = ``image_size``, 1024 for SAM), tokens ``B, G, G, C``
(``G = S / patch``), output embedding ``B, prompt_dim, G, G``. Kirillov et al., "Segment
Anything", ICCV 2023; Li et al., "Exploring Plain Vision Transformer Backbones for Object
Detection", ECCV 2022.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from medseg.models.sam.config import SamConfig
from medseg.models.sam_blocks import ChannelLayerNorm, FeedForward

#: attention logits of one chunk of heads kept under this many elements (global blocks)
_CHUNK_ELEMENTS = 1 << 26


def relative_table(size: int, table: torch.Tensor) -> torch.Tensor:
    """``size, size, C`` embeddings of every (query, key) offset along one axis: row ``q``,
    column ``k`` holds ``table[q - k + size - 1]``."""
    idx = torch.arange(size)[:, None] - torch.arange(size)[None, :] + (size - 1)
    return table[idx.to(table.device)]


class WindowAttention(nn.Module):
    """Multi-head self-attention over an ``h x w`` token grid, plus decomposed relative
    positions: a term from the query and the row offset, and one from the column offset."""

    def __init__(self, dim: int, heads: int, size: int, rel_pos: bool, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        head_dim = dim // heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos = rel_pos
        if rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * size - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * size - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, dim = x.shape
        qkv = self.qkv(x).reshape(n, h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, n * self.heads, h * w, -1).unbind(0)
        rel = (relative_table(h, self.rel_pos_h), relative_table(w, self.rel_pos_w)) \
            if self.rel_pos else None
        out = torch.empty_like(q)
        step = max(1, _CHUNK_ELEMENTS // max(1, (h * w) ** 2))
        for a in range(0, q.shape[0], step):  # a few (window, head) pairs at a time
            qa = q[a:a + step]
            logits = (qa * self.scale) @ k[a:a + step].transpose(-2, -1)
            if rel is not None:
                grid_q = qa.reshape(-1, h, w, qa.shape[-1])
                by_row = torch.einsum("bhwc,hkc->bhwk", grid_q, rel[0])
                by_col = torch.einsum("bhwc,wkc->bhwk", grid_q, rel[1])
                logits = (logits.view(-1, h, w, h, w) + by_row[:, :, :, :, None]
                          + by_col[:, :, :, None, :]).view(-1, h * w, h * w)
            out[a:a + step] = logits.softmax(dim=-1) @ v[a:a + step]
        out = out.view(n, self.heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(n, h, w, dim)
        return self.proj(out)


def to_windows(x: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``B, H, W, C`` zero-padded to multiples of ``size`` and cut into ``B * nW, size, size,
    C`` windows; also the padded ``(Hp, Wp)``."""
    b, h, w, c = x.shape
    ph, pw = (-h) % size, (-w) % size
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // size, size, wp // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.contiguous().view(-1, size, size, c), (hp, wp)


def from_windows(windows: torch.Tensor, size: int, padded: tuple[int, int],
                 hw: tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`to_windows`, padding removed."""
    hp, wp = padded
    b = windows.shape[0] // ((hp // size) * (wp // size))
    x = windows.view(b, hp // size, wp // size, size, size, -1).permute(0, 1, 3, 2, 4, 5)
    x = x.contiguous().view(b, hp, wp, -1)
    return x[:, :hw[0], :hw[1], :].contiguous() if (hp, wp) != tuple(hw) else x


class EncoderBlock(nn.Module):
    """Pre-norm transformer block; ``window`` 0 attends over the whole grid."""

    def __init__(self, cfg: SamConfig, window: int) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = WindowAttention(dim, cfg.encoder_heads, window or cfg.grid, cfg.use_rel_pos,
                                    cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FeedForward(dim, cfg.mlp_dim, nn.GELU)
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.window:
            hw = (y.shape[1], y.shape[2])
            y, padded = to_windows(y, self.window)
            y = from_windows(self.attn(y), self.window, padded, hw)
        else:
            y = self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        p = cfg.patch_size
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=p, stride=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # B, G, G, C


class ImageEncoder(nn.Module):
    """``B, 3, S, S`` in [0, 1] (MedSAM feeds it unnormalised) -> ``B, prompt_dim, G, G``."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        self.image_size = cfg.image_size
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed: nn.Parameter | None = None
        if cfg.use_abs_pos:
            self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid, cfg.grid, cfg.embed_dim))
        else:
            self.pos_embed = None
        self.blocks = nn.ModuleList(
            EncoderBlock(cfg, 0 if i in cfg.global_attn_indexes else cfg.window_size)
            for i in range(cfg.depth))
        out = cfg.prompt_dim
        self.neck = nn.Sequential(
            nn.Conv2d(cfg.embed_dim, out, kernel_size=1, bias=False), ChannelLayerNorm(out),
            nn.Conv2d(out, out, kernel_size=3, padding=1, bias=False), ChannelLayerNorm(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))
