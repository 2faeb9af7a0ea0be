"""SAM's mask decoder: a two-way transformer between the prompt tokens and the image
embedding, then an upsampled embedding dotted with per-mask hypernetwork weights.

Output tokens are ``[iou, mask_0, ..., mask_{M-1}, prompt tokens...]``; ``mask_0`` is the single
mask SAM returns when ``multimask_output`` is False (MedSAM's setting). Mask logits are
``B, M, 4G, 4G`` (256 x 256 for SAM).
"""

from __future__ import annotations

import torch
from torch import nn

from medseg.models.sam.config import SamConfig
from medseg.models.sam_blocks import MLP, ChannelLayerNorm, FeedForward, TokenAttention


class TwoWayBlock(nn.Module):
    """Token self-attention, tokens -> image, token MLP, image -> tokens (post-norm)."""

    def __init__(self, cfg: SamConfig, first: bool) -> None:
        super().__init__()
        dim, heads, down = cfg.prompt_dim, cfg.decoder_heads, cfg.attention_downsample
        self.self_attn = TokenAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = TokenAttention(dim, heads, down)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, cfg.decoder_mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = TokenAttention(dim, heads, down)
        #: the first block's self-attention sees the tokens without their positions added
        self.first = first

    def forward(self, tokens: torch.Tensor, image: torch.Tensor, token_pe: torch.Tensor,
                image_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            tokens = self.self_attn(tokens, tokens, tokens)
        else:
            q = tokens + token_pe
            tokens = tokens + self.self_attn(q, q, tokens)
        tokens = self.norm1(tokens)
        k = image + image_pe
        tokens = self.norm2(tokens + self.cross_attn_token_to_image(tokens + token_pe, k, image))
        tokens = self.norm3(tokens + self.mlp(tokens))
        image = self.norm4(image + self.cross_attn_image_to_token(k, tokens + token_pe, tokens))
        return tokens, image


class TwoWayTransformer(nn.Module):
    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        dim = cfg.prompt_dim
        self.layers = nn.ModuleList(TwoWayBlock(cfg, i == 0) for i in range(cfg.decoder_depth))
        self.final_attn_token_to_image = TokenAttention(dim, cfg.decoder_heads,
                                                        cfg.attention_downsample)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor,
                tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image``/``image_pe``: ``B, C, G, G``; ``tokens``: ``B, N, C`` (also their own
        positional term). Returns the tokens and the image as ``B, G*G, C``."""
        image = image.flatten(2).permute(0, 2, 1)
        image_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = tokens
        for layer in self.layers:
            queries, image = layer(queries, image, tokens, image_pe)
        attn = self.final_attn_token_to_image(queries + tokens, image + image_pe, image)
        return self.norm_final_attn(queries + attn), image


class MaskDecoder(nn.Module):
    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        dim = cfg.prompt_dim
        self.transformer = TwoWayTransformer(cfg)
        self.num_mask_tokens = cfg.num_mask_tokens
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(cfg.num_mask_tokens, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2), ChannelLayerNorm(dim // 4),
            nn.GELU(), nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP([dim, dim, dim, dim // 8]) for _ in range(cfg.num_mask_tokens))
        self.iou_prediction_head = MLP([dim] + [cfg.iou_head_hidden] * (cfg.iou_head_depth - 1)
                                       + [cfg.num_mask_tokens])

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor, multimask: bool = False) -> tuple[torch.Tensor,
                                                                       torch.Tensor]:
        """``image``: ``1, C, G, G`` (one image, shared by the ``B`` prompts); returns mask
        logits ``B, 1, 4G, 4G`` (or ``B, M-1, ...`` with ``multimask``) and IoU guesses."""
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        out_tokens = out_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
        tokens = torch.cat((out_tokens, sparse), dim=1)
        src = torch.repeat_interleave(image, tokens.shape[0], dim=0) + dense
        pos = torch.repeat_interleave(image_pe, tokens.shape[0], dim=0)
        b, c, h, w = src.shape
        hs, src = self.transformer(src, pos, tokens)
        mask_out = hs[:, 1:1 + self.num_mask_tokens, :]
        up = self.output_upscaling(src.transpose(1, 2).view(b, c, h, w))
        hyper = torch.stack([mlp(mask_out[:, i, :])
                             for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        b, c, h, w = up.shape
        masks = (hyper @ up.view(b, c, h * w)).view(b, -1, h, w)
        iou = self.iou_prediction_head(hs[:, 0, :])
        pick = slice(1, None) if multimask else slice(0, 1)
        return masks[:, pick], iou[:, pick]
