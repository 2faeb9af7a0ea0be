"""The medseg hook implementations of medseg-deeplab (entry point ``deeplab`` in group
``medseg``)."""

from __future__ import annotations

from collections.abc import Sequence

from medseg.hookspecs import hookimpl
from medseg.specs import ArchitectureSpec
from medseg_deeplab.model import DeepLabV3Plus


def deeplabv3plus(*, spatial_dims: int, in_channels: int, out_channels: int,
                  channels: Sequence[int] = (32, 32, 64, 128, 256),
                  blocks: Sequence[int] = (1, 1, 1, 1), output_stride: int = 16,
                  atrous_rates: Sequence[int] = (6, 12, 18), aspp_channels: int = 128,
                  low_level_channels: int = 48, decoder_channels: int = 128,
                  norm: str = "group", dropout: float = 0.1) -> DeepLabV3Plus:
    """Factory in medseg's ArchitectureSpec convention (keyword arguments only)."""
    return DeepLabV3Plus(spatial_dims, in_channels, out_channels, channels=tuple(channels),
                         blocks=tuple(blocks), output_stride=output_stride,
                         atrous_rates=tuple(atrous_rates), aspp_channels=aspp_channels,
                         low_level_channels=low_level_channels,
                         decoder_channels=decoder_channels, norm=norm, dropout=dropout)


@hookimpl
def medseg_register_architectures() -> list[ArchitectureSpec]:
    return [
        ArchitectureSpec(
            name="deeplabv3plus",
            factory=deeplabv3plus,
            description="DeepLabV3+ (Chen et al. 2018): residual encoder, ASPP, decoder "
                        "with low-level skip; 2D and 3D",
            defaults={"output_stride": 16, "atrous_rates": [6, 12, 18]},
            spatial_dims=(2, 3),
            size_divisor=16,
        ),
    ]
