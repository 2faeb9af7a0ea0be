"""DeepLabV3+ for 2D and 3D images, in plain torch.

Chen L-C, Zhu Y, Papandreou G, Schroff F, Adam H. "Encoder-Decoder with Atrous Separable
Convolution for Semantic Image Segmentation". ECCV 2018 (arXiv:1802.02611).

Layout: input ``B, C_in, X, Y[, Z]`` -> logits ``B, C_out, X, Y[, Z]`` (same spatial size).

- **Encoder**: a small residual network (a strided stem and four stages of basic residual
  blocks). The stage at 1/4 resolution gives the low-level features; the last stages stop
  striding and dilate instead once the ``output_stride`` (8 or 16) is reached, as in the
  paper's atrous ResNet.
- **ASPP** (atrous spatial pyramid pooling): a 1x1 convolution, one 3x3 convolution per
  atrous rate (``atrous_rates``, the paper's (6, 12, 18) at output stride 16, doubled at 8)
  and an image-level pooling branch, concatenated and projected.
- **Decoder**: the ASPP output upsampled to the low-level features' size, concatenated with
  their 1x1-reduced projection, refined by two 3x3 convolutions, classified, and upsampled
  (bilinear in 2D, trilinear in 3D) back to the input size.

The paper's depthwise-separable convolutions are an efficiency choice and are left out for
clarity; normalisation defaults to GroupNorm, which works with the small batches of 3D
training (``norm="batch"`` or ``"instance"`` are available).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def _conv(dims: int) -> type[nn.Module]:
    return nn.Conv3d if dims == 3 else nn.Conv2d


def _norm(kind: str, dims: int, channels: int) -> nn.Module:
    if kind == "group":
        # at least two channels per group, so a 1-voxel map still normalises
        groups = next((g for g in (8, 4, 2) if channels % g == 0 and channels // g >= 2), 1)
        return nn.GroupNorm(groups, channels)
    if kind == "batch":
        return (nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d)(channels, affine=True)
    raise ValueError(f"norm must be 'group', 'batch' or 'instance', got {kind!r}")


class ConvNormAct(nn.Sequential):
    def __init__(self, dims: int, cin: int, cout: int, kernel: int = 3, stride: int = 1,
                 dilation: int = 1, norm: str = "group") -> None:
        pad = dilation * (kernel // 2)
        super().__init__(_conv(dims)(cin, cout, kernel, stride, pad, dilation, bias=False),
                         _norm(norm, dims, cout), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Basic residual block (He et al. 2016): two 3x3 convolutions and a projected shortcut."""

    def __init__(self, dims: int, cin: int, cout: int, stride: int = 1, dilation: int = 1,
                 norm: str = "group") -> None:
        super().__init__()
        conv = _conv(dims)
        self.conv1 = ConvNormAct(dims, cin, cout, 3, stride, dilation, norm)
        self.conv2 = conv(cout, cout, 3, 1, dilation, dilation, bias=False)
        self.norm2 = _norm(norm, dims, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv(cin, cout, 1, stride, bias=False),
                                          _norm(norm, dims, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm2(self.conv2(self.conv1(x))) + self.shortcut(x))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with image-level features (Chen et al. 2017, 2018)."""

    def __init__(self, dims: int, cin: int, cout: int, rates: Sequence[int],
                 norm: str = "group", dropout: float = 0.1) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvNormAct(dims, cin, cout, 1, norm=norm)]
            + [ConvNormAct(dims, cin, cout, 3, dilation=int(r), norm=norm) for r in rates])
        pool = nn.AdaptiveAvgPool3d(1) if dims == 3 else nn.AdaptiveAvgPool2d(1)
        # no normalisation on the 1-voxel pooled map (it would be undefined for instance norm)
        self.pooling = nn.Sequential(pool, _conv(dims)(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(
            ConvNormAct(dims, cout * (len(rates) + 2), cout, 1, norm=norm), nn.Dropout(dropout))
        self.mode = "trilinear" if dims == 3 else "bilinear"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [b(x) for b in self.branches]
        pooled = self.pooling(x).expand(-1, -1, *x.shape[2:])
        return self.project(torch.cat([*feats, pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ (Chen et al. 2018) for ``spatial_dims`` 2 or 3.

    Args:
        spatial_dims: 2 or 3.
        in_channels / out_channels: image channels / classes (logits).
        channels: widths of the stem and the four encoder stages' outputs (5 values).
        blocks: residual blocks per encoder stage (4 values).
        output_stride: 8 or 16, the encoder's total downsampling before ASPP.
        atrous_rates: ASPP dilation rates (at the ASPP's resolution).
        aspp_channels, low_level_channels, decoder_channels: widths of ASPP, the reduced
            low-level skip and the decoder.
        norm: "group" (default), "batch" or "instance".
        dropout: after the ASPP projection.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (32, 32, 64, 128, 256),
                 blocks: Sequence[int] = (1, 1, 1, 1), output_stride: int = 16,
                 atrous_rates: Sequence[int] = (6, 12, 18), aspp_channels: int = 128,
                 low_level_channels: int = 48, decoder_channels: int = 128,
                 norm: str = "group", dropout: float = 0.1) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        if len(channels) != 5 or len(blocks) != 4:
            raise ValueError("channels needs 5 values (stem + 4 stages), blocks 4 values")
        dims = spatial_dims
        self.stem = ConvNormAct(dims, in_channels, channels[0], 3, stride=2, norm=norm)  # 1/2
        # stage strides/dilations: 1/4, 1/8, then stride or dilate up to the output stride
        strides = [2, 2, 2, 1] if output_stride == 16 else [2, 2, 1, 1]
        dilations = [1, 1, 1, 2] if output_stride == 16 else [1, 1, 2, 4]
        stages = []
        cin = channels[0]
        for cout, n, stride, dilation in zip(channels[1:], blocks, strides, dilations,
                                             strict=True):
            layers = [ResidualBlock(dims, cin, cout, stride, max(1, dilation // 2)
                                    if stride == 1 and dilation > 1 else 1, norm)]
            layers += [ResidualBlock(dims, cout, cout, 1, dilation, norm) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.aspp = ASPP(dims, channels[4], aspp_channels, atrous_rates, norm, dropout)
        self.low_level = ConvNormAct(dims, channels[1], low_level_channels, 1, norm=norm)
        self.decoder = nn.Sequential(
            ConvNormAct(dims, aspp_channels + low_level_channels, decoder_channels, 3,
                        norm=norm),
            ConvNormAct(dims, decoder_channels, decoder_channels, 3, norm=norm))
        self.classifier = _conv(dims)(decoder_channels, out_channels, 1)
        self.mode = "trilinear" if dims == 3 else "bilinear"
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        h = self.stem(x)
        low = None
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i == 0:
                low = h  # 1/4 resolution
        assert low is not None
        h = self.aspp(h)
        h = F.interpolate(h, size=low.shape[2:], mode=self.mode, align_corners=False)
        h = self.decoder(torch.cat([h, self.low_level(low)], dim=1))
        return F.interpolate(self.classifier(h), size=size, mode=self.mode, align_corners=False)
