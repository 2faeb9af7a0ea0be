"""More built-in architectures: MONAI SwinUNETR, UNETR, Attention U-Net and a 2D SegFormer.

Every factory follows :class:`medseg.specs.ArchitectureSpec`: keyword arguments
``spatial_dims``, ``in_channels``, ``out_channels`` plus the architecture's own parameters,
returning an ``nn.Module`` that maps ``B, C_in, *spatial`` to logits ``B, C_out, *spatial``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg.errors import PluginError
from medseg.hookspecs import hookimpl
from medseg.specs import ArchitectureSpec


def swinunetr(*, spatial_dims: int, in_channels: int, out_channels: int, feature_size: int = 24,
              depths: Sequence[int] = (2, 2, 2, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
              window_size: int = 7, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
              dropout_path_rate: float = 0.0, use_v2: bool = False,
              use_checkpoint: bool = False) -> Any:
    """MONAI SwinUNETR (Hatamizadeh et al. 2022, arXiv:2201.01266): a Swin Transformer
    encoder with a U-Net decoder. Spatial sizes must be divisible by 32 and be at least 64
    (the deepest stage is 1/32 of the patch and instance normalisation needs more than one
    voxel); ``feature_size`` must be divisible by 12."""
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(in_channels=in_channels, out_channels=out_channels,
                     spatial_dims=spatial_dims, feature_size=feature_size, depths=tuple(depths),
                     num_heads=tuple(num_heads), window_size=window_size, drop_rate=drop_rate,
                     attn_drop_rate=attn_drop_rate, dropout_path_rate=dropout_path_rate,
                     use_v2=use_v2, use_checkpoint=use_checkpoint)


def unetr(*, spatial_dims: int, in_channels: int, out_channels: int,
          img_size: Sequence[int] | int | None = None, feature_size: int = 16,
          hidden_size: int = 768, mlp_dim: int = 3072, num_heads: int = 12,
          dropout_rate: float = 0.0, norm_name: str = "instance") -> Any:
    """MONAI UNETR (Hatamizadeh et al. 2022, WACV): a ViT encoder on 16^d patches with a
    convolutional decoder. ``img_size`` is fixed at construction and must equal the training
    patch size (pass ``--arch-params '{"img_size": [96, 96, 96]}'`` with ``--patch-size``)."""
    from monai.networks.nets import UNETR

    if img_size is None:
        raise PluginError("unetr needs arch param img_size equal to the patch size, "
                          "e.g. {\"img_size\": [96, 96, 96]}")
    size = [int(img_size)] * spatial_dims if isinstance(img_size, int) else list(img_size)
    return UNETR(in_channels=in_channels, out_channels=out_channels, img_size=size,
                 feature_size=feature_size, hidden_size=hidden_size, mlp_dim=mlp_dim,
                 num_heads=num_heads, dropout_rate=dropout_rate, norm_name=norm_name,
                 spatial_dims=spatial_dims)


def attention_unet(*, spatial_dims: int, in_channels: int, out_channels: int,
                   channels: Sequence[int] = (16, 32, 64, 128, 256),
                   strides: Sequence[int] | None = None, dropout: float = 0.0) -> Any:
    """MONAI Attention U-Net (Oktay et al. 2018, arXiv:1804.03999): U-Net with attention gates
    on the skip connections."""
    from monai.networks.nets import AttentionUnet

    strides = tuple(strides) if strides is not None else (2,) * (len(channels) - 1)
    return AttentionUnet(spatial_dims=spatial_dims, in_channels=in_channels,
                         out_channels=out_channels, channels=tuple(channels), strides=strides,
                         dropout=dropout)


def _segformer_module():
    import torch

    class SegFormer(torch.nn.Module):
        """SegFormer logits upsampled (bilinear) from 1/4 resolution to the input size."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.model(pixel_values=x).logits
            return torch.nn.functional.interpolate(logits, size=tuple(x.shape[2:]),
                                                   mode="bilinear", align_corners=False)

    return SegFormer


def segformer(*, spatial_dims: int, in_channels: int, out_channels: int,
              hidden_sizes: Sequence[int] = (32, 64, 160, 256),
              depths: Sequence[int] = (2, 2, 2, 2),
              num_attention_heads: Sequence[int] = (1, 2, 5, 8),
              sr_ratios: Sequence[int] = (8, 4, 2, 1), decoder_hidden_size: int = 256,
              drop_path_rate: float = 0.1, pretrained_path: str | None = None) -> Any:
    """2D SegFormer (Xie et al. 2021, NeurIPS, arXiv:2105.15203) from Hugging Face
    ``transformers``: a hierarchical Mix Transformer encoder with an all-MLP decoder.

    Randomly initialised from the given sizes (the defaults are MiT-b0). With
    ``pretrained_path`` the weights are read with ``from_pretrained`` from that local folder
    (nothing is downloaded); the classifier is re-initialised for ``out_channels`` classes and
    the first patch embedding for ``in_channels`` channels when they differ. The folder must
    still exist when the bundle is loaded again (the bundle's own weights then replace it).
    """
    if spatial_dims != 2:
        raise PluginError(f"segformer is 2D only, got spatial_dims={spatial_dims}")
    try:
        from transformers import SegformerConfig, SegformerForSemanticSegmentation
    except ImportError as exc:
        raise PluginError("segformer needs the 'transformers' package "
                          "(pip install transformers)") from exc
    if pretrained_path is not None:
        folder = Path(pretrained_path)
        if not folder.is_dir():
            raise PluginError(f"{folder}: segformer pretrained_path is not a folder")
        model = SegformerForSemanticSegmentation.from_pretrained(
            str(folder), num_labels=out_channels, num_channels=in_channels,
            ignore_mismatched_sizes=True, local_files_only=True)
    else:
        n = len(hidden_sizes)
        config = SegformerConfig(
            num_channels=in_channels, num_labels=out_channels, num_encoder_blocks=n,
            hidden_sizes=list(hidden_sizes), depths=list(depths),
            num_attention_heads=list(num_attention_heads), sr_ratios=list(sr_ratios),
            decoder_hidden_size=decoder_hidden_size, drop_path_rate=drop_path_rate,
            patch_sizes=[7, 3, 3, 3][:n], strides=[4, 2, 2, 2][:n],
            mlp_ratios=[4] * n)
        model = SegformerForSemanticSegmentation(config)
    return _segformer_module()(model)


@hookimpl
def medseg_register_architectures() -> list[ArchitectureSpec]:
    return [
        ArchitectureSpec(
            name="swinunetr", factory=swinunetr, size_divisor=32,  # and >= 64 per side
            description="MONAI SwinUNETR, Swin Transformer encoder; patches >= 64 "
                        "(Hatamizadeh et al. 2022)",
            defaults={"feature_size": 24},
        ),
        ArchitectureSpec(
            name="unetr", factory=unetr, size_divisor=16,
            description="MONAI UNETR, ViT encoder; needs img_size = patch size "
                        "(Hatamizadeh et al. 2022)",
        ),
        ArchitectureSpec(
            name="attention_unet", factory=attention_unet, size_divisor=16,
            description="MONAI Attention U-Net (Oktay et al. 2018)",
            defaults={"channels": [16, 32, 64, 128, 256]},
        ),
        ArchitectureSpec(
            name="segformer", factory=segformer, size_divisor=32, spatial_dims=(2,),
            description="2D SegFormer via transformers (Xie et al. 2021); "
                        "optional local pretrained_path",
        ),
    ]
