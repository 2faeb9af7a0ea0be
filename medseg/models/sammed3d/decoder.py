"""SAM-Med3D's mask decoder: a two-way transformer between prompt tokens and the image
embedding, then an upsampling head whose channels are mixed by per-token hypernetworks.

Shapes: image embedding ``B, C, d, h, w`` (``8^3``), tokens ``B, T, C``; the low-resolution
mask logits come out ``B, 1, 4d, 4h, 4w`` (``32^3``). Only the first mask token (the single-mask
output the authors' inference uses) is turned into a mask; the other tokens' heads are loaded
with the checkpoint but not evaluated. Kirillov et al., Segment Anything, 2023.
"""

from __future__ import annotations

import torch
from torch import nn

from medseg.models.sam_blocks import MLP, ChannelLayerNorm, FeedForward, TokenAttention

#: attention heads of the decoder's transformer (fixed by the architecture, not the weights)
DECODER_HEADS = 8


class TwoWayBlock(nn.Module):
    """Tokens attend to themselves and to the image; the image attends back to the tokens."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.self_attn = TokenAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = TokenAttention(dim, heads, 2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = TokenAttention(dim, heads, 2)

    def forward(self, tokens: torch.Tensor, image: torch.Tensor, token_pe: torch.Tensor,
                image_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:  # the first block's self-attention sees no position terms
            tokens = self.self_attn(tokens, tokens, tokens)
        else:
            q = tokens + token_pe
            tokens = tokens + self.self_attn(q, q, tokens)
        tokens = self.norm1(tokens)
        tokens = self.norm2(tokens + self.cross_attn_token_to_image(
            tokens + token_pe, image + image_pe, image))
        tokens = self.norm3(tokens + self.mlp(tokens))
        image = self.norm4(image + self.cross_attn_image_to_token(
            image + image_pe, tokens + token_pe, tokens))
        return tokens, image


class TwoWayTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, i == 0)
                                    for i in range(depth))
        self.final_attn_token_to_image = TokenAttention(dim, heads, 2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor,
                tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image``/``image_pe``: ``B, C, d, h, w``; ``tokens``: ``B, T, C``."""
        image = image.flatten(2).permute(0, 2, 1)
        image_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = tokens
        for layer in self.layers:
            queries, image = layer(queries, image, tokens, image_pe)
        queries = queries + self.final_attn_token_to_image(queries + tokens, image + image_pe,
                                                           image)
        return self.norm_final_attn(queries), image


class MaskDecoder3D(nn.Module):
    def __init__(self, *, dim: int, depth: int, mlp_dim: int, mask_tokens: int,
                 iou_hidden: int, iou_depth: int) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(dim, depth, DECODER_HEADS, mlp_dim)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(mask_tokens, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose3d(dim, dim // 4, kernel_size=2, stride=2),
            ChannelLayerNorm(dim // 4),
            nn.GELU(),
            nn.ConvTranspose3d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP([dim, dim, dim, dim // 8]) for _ in range(mask_tokens))
        self.iou_prediction_head = MLP([dim] + [iou_hidden] * (iou_depth - 1)
                                           + [mask_tokens])

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor) -> torch.Tensor:
        """Low-resolution logits ``B, 1, 4d, 4h, 4w`` of the single-mask output."""
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        src = image.expand(b, -1, -1, -1, -1) + dense
        pos = image_pe.expand(b, -1, -1, -1, -1)
        _, c, d, h, w = src.shape
        queries, src_tokens = self.transformer(src, pos, tokens)
        upscaled = self.output_upscaling(src_tokens.transpose(1, 2).reshape(b, c, d, h, w))
        weights = self.output_hypernetworks_mlps[0](queries[:, 1])  # B, C/8
        _, c8, d4, h4, w4 = upscaled.shape
        logits = weights[:, None, :] @ upscaled.reshape(b, c8, d4 * h4 * w4)
        return logits.reshape(b, 1, d4, h4, w4)
