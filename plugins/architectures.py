"""Built-in MONAI architectures: UNet, DynUNet (nnU-Net style) and SegResNet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medseg.hookspecs import hookimpl
from medseg.specs import ArchitectureSpec


def unet(*, spatial_dims: int, in_channels: int, out_channels: int,
         channels: Sequence[int] = (16, 32, 64, 128), strides: Sequence[int] | None = None,
         num_res_units: int = 2, norm: str = "instance", dropout: float = 0.0) -> Any:
    """MONAI residual U-Net (Kerfoot et al. 2018)."""
    from monai.networks.nets import UNet

    strides = tuple(strides) if strides is not None else (2,) * (len(channels) - 1)
    return UNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                channels=tuple(channels), strides=strides, num_res_units=num_res_units,
                norm=norm, dropout=dropout)


def dynunet_plan(patch_size: Sequence[int], spacing: Sequence[float] | None = None,
                 max_levels: int = 5, min_size: int = 4) -> tuple[list, list]:
    """nnU-Net's heuristic: pool an axis while it stays >= ``min_size`` voxels and its spacing is
    at most twice the finest; use 1 instead of 3 as kernel along axes still much coarser."""
    size = [int(s) for s in patch_size]
    sp = [float(s) for s in (spacing or [1.0] * len(size))]
    kernels: list = []
    strides: list = [[1] * len(size)]
    for _ in range(max_levels):
        finest = min(sp)
        stride = [2 if (s >= 2 * min_size and sp_i <= 2 * finest) else 1
                  for s, sp_i in zip(size, sp, strict=True)]
        kernels.append([3 if sp_i <= 2 * finest else 1 for sp_i in sp])
        if all(st == 1 for st in stride):
            break
        strides.append(stride)
        size = [s // st for s, st in zip(size, stride, strict=True)]
        sp = [s * st for s, st in zip(sp, stride, strict=True)]
    kernels.append([3 if sp_i <= 2 * min(sp) else 1 for sp_i in sp])
    kernels = kernels[: len(strides)]
    return kernels, strides


def dynunet(*, spatial_dims: int, in_channels: int, out_channels: int,
            patch_size: Sequence[int] | None = None, spacing: Sequence[float] | None = None,
            kernel_size: Sequence | None = None, strides: Sequence | None = None,
            filters: Sequence[int] | None = None, max_levels: int = 5,
            norm_name: str = "instance", deep_supervision: bool = False,
            res_block: bool = False) -> Any:
    """MONAI DynUNet configured like nnU-Net from the patch size and target spacing."""
    from monai.networks.nets import DynUNet

    if kernel_size is None or strides is None:
        patch = patch_size or [64] * spatial_dims
        kernel_size, strides = dynunet_plan(patch, spacing, max_levels)
    if filters is None:
        filters = [min(32 * 2**i, 320) for i in range(len(strides))]
    kernel_size = [list(k) if isinstance(k, (list, tuple)) else k for k in kernel_size]
    strides = [list(s) if isinstance(s, (list, tuple)) else s for s in strides]
    return DynUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                   kernel_size=kernel_size, strides=strides, upsample_kernel_size=strides[1:],
                   filters=list(filters), norm_name=norm_name,
                   deep_supervision=deep_supervision, res_block=res_block)


def segresnet(*, spatial_dims: int, in_channels: int, out_channels: int, init_filters: int = 16,
              blocks_down: Sequence[int] = (1, 2, 2, 4), blocks_up: Sequence[int] = (1, 1, 1),
              dropout_prob: float | None = None) -> Any:
    """MONAI SegResNet (Myronenko 2018)."""
    from monai.networks.nets import SegResNet

    return SegResNet(spatial_dims=spatial_dims, in_channels=in_channels,
                     out_channels=out_channels, init_filters=init_filters,
                     blocks_down=tuple(blocks_down), blocks_up=tuple(blocks_up),
                     dropout_prob=dropout_prob)


@hookimpl
def medseg_register_architectures() -> list[ArchitectureSpec]:
    return [
        ArchitectureSpec(
            name="unet", factory=unet, size_divisor=8,
            description="MONAI residual U-Net (Kerfoot et al. 2018)",
            defaults={"channels": [16, 32, 64, 128], "num_res_units": 2},
        ),
        ArchitectureSpec(
            name="dynunet", factory=dynunet, size_divisor=16,
            description="MONAI DynUNet with nnU-Net-style kernels/strides from patch and spacing",
            defaults={"max_levels": 5},
        ),
        ArchitectureSpec(
            name="segresnet", factory=segresnet, size_divisor=8,
            description="MONAI SegResNet (Myronenko 2018)",
            defaults={"init_filters": 16},
        ),
    ]
