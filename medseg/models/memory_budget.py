"""Memory a model file asks for, computed from the file alone, before anything is built.

A plans file or a bundle config decides how much memory a run takes: the network's weights
(from its channel counts and kernels) and, for each image, the sliding window's buffers (from
the patch size and the model-grid shape, which the image is padded up to when smaller). These
pure functions turn those numbers into byte counts, part by part, so that a caller can refuse a
file that asks for more than ``MEDSEG_MAX_MEMORY_BYTES`` with one line naming the file and the
numbers, instead of finding out by allocating. Nothing here reads a file or builds a tensor.

* :func:`unet_parameters` counts the state-dict elements of the U-Nets of
  ``dynamic_network_architectures`` (nnU-Net's ``PlainConvUNet`` and ``ResidualEncoderUNet``
  with ``BasicBlockD``) from their keyword arguments, exactly.
* :func:`unet_activations` estimates the float elements one sample's forward pass holds at its
  peak: every encoder output is kept for the skips, and the top decoder stage holds a
  transposed-convolution output, the concatenation, a convolution and a normalisation output
  at full resolution (measured on the CPU: 60-70 elements per voxel for a U-Net whose first
  stage has 8 features; the formula gives 66-75).
* :func:`nnunet_tiles` and :func:`monai_tiles` list the buffers of medseg's two sliding
  windows (:mod:`medseg.models.nnunet.sliding_window`, MONAI's ``sliding_window_inference``)
  beyond the model-grid image and its class maps, which the segmenter counts itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FLOAT32 = 4
#: scipy's float64 impulse and filtered copy, the float32 map and its zero mask, per voxel
_GAUSSIAN_BYTES = 8 + 8 + 4 + 1
_RESIDUAL_NAMES = ("ResidualEncoderUNet",)


@dataclass(frozen=True)
class Footprint:
    """Bytes of working memory, named part by part (``(name, bytes)``)."""

    parts: tuple[tuple[str, int], ...] = ()
    #: what the parts were computed from (patch, grid, ...)
    basis: str = ""
    #: the model file they come from
    source: str = ""

    @property
    def total(self) -> int:
        return sum(b for _, b in self.parts)

    def describe(self) -> str:
        """``SOURCE: BASIS: part 1.0 GiB, part 2.0 MiB`` (parts of zero bytes left out)."""
        items = ", ".join(f"{name} {human_bytes(b)}" for name, b in self.parts if b)
        return ": ".join(x for x in (self.source, self.basis, items) if x)


def human_bytes(n: float) -> str:
    """``1.5 GiB``-style size for messages (the exact byte count is given beside it)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover - loop always returns


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


# ---- reading the architecture keywords -----------------------------------------------------
def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def _per_stage(value: Any, n: int, what: str) -> list[Any]:
    """An int (the same for every stage) or a list of ``n`` entries."""
    if isinstance(value, list):
        if len(value) != n:
            raise ValueError(f"{what} must have {n} entries, got {len(value)}")
        return list(value)
    return [value] * n


def _kernel(value: Any, dims: int, what: str) -> list[int]:
    """An int or a list of ``dims`` ints (a kernel size or stride)."""
    items = value if isinstance(value, list) else [value] * dims
    if len(items) != dims:
        raise ValueError(f"{what} must have {dims} entries, got {value!r}")
    out = [_int(v, what) for v in items]
    if not all(out):
        raise ValueError(f"{what} must be positive, got {value!r}")
    return out


def _norm_elements(norm_op: Any, kwargs: Any, channels: int) -> int:
    """State-dict elements of ``norm_op(channels, **kwargs)`` (weights and running stats)."""
    if norm_op is None:
        return 0
    name = str(norm_op).rsplit(".", 1)[-1]
    kw = kwargs if isinstance(kwargs, dict) else {}
    if name.startswith("InstanceNorm"):
        affine, stats = kw.get("affine", False), kw.get("track_running_stats", False)
        return 2 * channels * (bool(affine) + bool(stats)) + (1 if stats else 0)
    if name.startswith("BatchNorm"):
        affine, stats = kw.get("affine", True), kw.get("track_running_stats", True)
        return 2 * channels * (bool(affine) + bool(stats)) + (1 if stats else 0)
    if name == "LayerNorm":
        affine = kw.get("elementwise_affine", True)
        return (channels + (channels if kw.get("bias", True) else 0)) if affine else 0
    if name == "GroupNorm":  # built as GroupNorm(num_groups=channels, **kwargs)
        groups = kw.get("num_channels", channels)
        return 2 * _int(groups, "norm_op_kwargs num_channels") if kw.get("affine", True) else 0
    return 2 * channels


@dataclass(frozen=True)
class _Unet:
    dims: int
    features: list[int]
    kernels: list[list[int]]
    strides: list[list[int]]
    encoder_convs: list[int]
    decoder_convs: list[int]
    bias: bool
    residual: bool
    stem: int
    norm_op: Any
    norm_kwargs: Any
    prelu: bool


def _read_unet(class_name: str, kw: Mapping[str, Any], dims: int) -> _Unet:
    n = _int(kw.get("n_stages"), "n_stages")
    if n < 1:
        raise ValueError("n_stages must be at least 1")
    residual = class_name.rsplit(".", 1)[-1] in _RESIDUAL_NAMES
    enc_key = "n_blocks_per_stage" if residual else "n_conv_per_stage"
    features = [_int(f, "features_per_stage") for f in
                _per_stage(kw.get("features_per_stage"), n, "features_per_stage")]
    kernels = [_kernel(k, dims, "kernel_sizes") for k in
               _per_stage(kw.get("kernel_sizes"), n, "kernel_sizes")]
    strides = [_kernel(s, dims, "strides") for s in _per_stage(kw.get("strides"), n, "strides")]
    enc = [_int(c, enc_key) for c in _per_stage(kw.get(enc_key), n, enc_key)]
    dec = [_int(c, "n_conv_per_stage_decoder") for c in
           _per_stage(kw.get("n_conv_per_stage_decoder"), n - 1, "n_conv_per_stage_decoder")]
    stem = kw.get("stem_channels")
    nonlin = str(kw.get("nonlin") or "").rsplit(".", 1)[-1]
    return _Unet(dims=dims, features=features, kernels=kernels, strides=strides,
                 encoder_convs=enc, decoder_convs=dec, bias=bool(kw.get("conv_bias", False)),
                 residual=residual, stem=features[0] if stem is None else _int(stem, "stem"),
                 norm_op=kw.get("norm_op"), norm_kwargs=kw.get("norm_op_kwargs"),
                 prelu=nonlin == "PReLU")


def unet_parameters(class_name: str, kwargs: Mapping[str, Any], in_channels: int,
                    n_classes: int, spatial_dims: int) -> int:
    """Elements of the distinct parameters and buffers (weights, biases, norm statistics) of
    a ``PlainConvUNet`` or a ``ResidualEncoderUNet`` built from ``kwargs``, computed from the
    numbers alone. (Its state dict names many of them twice: each block registers its layers
    twice and the decoder keeps the encoder, so a saved state dict holds these elements in
    fewer storages than it has keys.) Raises ``ValueError`` naming the keyword that cannot be
    read."""
    u = _read_unet(class_name, kwargs, spatial_dims)

    def conv(cin: int, cout: int, kernel: Sequence[int], bias: bool | None = None) -> int:
        return cin * cout * math.prod(kernel) + (cout if (u.bias if bias is None else bias)
                                                 else 0)

    def block(cin: int, cout: int, kernel: Sequence[int], norm: bool = True,
              nonlin: bool = True, bias: bool | None = None) -> int:
        """ConvDropoutNormReLU: a convolution, its normalisation and non-linearity."""
        return (conv(cin, cout, kernel, bias)
                + (_norm_elements(u.norm_op, u.norm_kwargs, cout) if norm else 0)
                + (1 if nonlin and u.prelu else 0))

    encoder = 0
    cin = in_channels
    if u.residual:
        encoder += block(cin, u.stem, u.kernels[0])
        cin = u.stem
    for f, k, n in zip(u.features, u.kernels, u.encoder_convs, strict=True):
        for i in range(n):
            if u.residual:  # BasicBlockD: conv1 (norm, nonlin), conv2 (norm), nonlin, skip
                first_in = cin if i == 0 else f
                encoder += block(first_in, f, k) + block(f, f, k, nonlin=False)
                encoder += 1 if u.prelu else 0
                if i == 0 and first_in != f:  # 1x1 projection, no bias, normalised
                    encoder += block(first_in, f, [1] * u.dims, nonlin=False, bias=False)
            else:
                encoder += block(cin if i == 0 else f, f, k)
        cin = f
    decoder = 0
    for s in range(1, len(u.features)):
        below, skip = u.features[-s], u.features[-(s + 1)]
        decoder += conv(below, skip, u.strides[-s])  # transposed convolution, kernel = stride
        for i in range(u.decoder_convs[s - 1]):
            decoder += block(2 * skip if i == 0 else skip, skip, u.kernels[-(s + 1)])
        # every stage has its 1x1 segmentation layer (used or not without deep supervision)
        decoder += conv(skip, n_classes, [1] * u.dims, bias=True)
    return encoder + decoder


def unet_activations(class_name: str, kwargs: Mapping[str, Any], patch: Sequence[int],
                     in_channels: int, n_classes: int) -> int:
    """Float elements one sample's forward pass holds at its peak (see the module notes)."""
    u = _read_unet(class_name, kwargs, len(patch))
    size = [int(p) for p in patch]
    skips = 0
    for f, stride in zip(u.features, u.strides, strict=True):
        size = [max(1, s // st) for s, st in zip(size, stride, strict=True)]
        skips += f * math.prod(size)
    top = math.prod(int(p) for p in patch)
    top_size = [max(1, p // st) for p, st in zip(patch, u.strides[0], strict=True)]
    return skips + 6 * u.features[0] * math.prod(top_size) + (in_channels + 2 * n_classes) * top


def conv_net_activations(widths: Sequence[int], patch: Sequence[int], in_channels: int,
                         n_classes: int) -> int:
    """A rough per-sample activation count for a registry architecture known only by its
    channel counts (``widths``, first level first): two maps of the first width, the input and
    two of the classes at full resolution (measured: a MONAI UNet with channels 16..128 holds
    about 36 elements per voxel of a 96^3 patch; this gives 49)."""
    first = int(widths[0]) if widths else 0
    return (2 * first + in_channels + 2 * n_classes) * math.prod(int(p) for p in patch)


# ---- sliding windows ----------------------------------------------------------------------
def padded_to_patch(grid: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    """The grid after padding its trailing axes up to the patch (2D patches: the last two)."""
    grid = [int(g) for g in grid]
    lead = len(grid) - len(patch)
    return tuple(grid[:lead] + [max(g, int(p)) for g, p in zip(grid[lead:], patch,
                                                               strict=True)])


def nnunet_tiles(grid: Sequence[int], patch: Sequence[int], in_channels: int, n_classes: int,
                 batch_size: int, activations: int, activations_on_host: bool = True,
                 source: str = "") -> Footprint:
    """Buffers of :func:`medseg.models.nnunet.sliding_window.sliding_window_logits` beyond
    the model-grid image and the ``K`` class maps of the grid (counted by the segmenter; the
    logit buffer covers the grid, not its padding): the padded copy of the image, the weight
    sum, the Gaussian, a batch of tiles with its mirrored copies, outputs and network
    activations (``activations`` elements per sample, ``batch_size`` samples)."""
    padded = padded_to_patch(grid, patch)
    grid_voxels, pad_voxels = math.prod(int(g) for g in grid), math.prod(padded)
    extra = pad_voxels - grid_voxels
    tile = math.prod(int(p) for p in patch)
    samples = max(1, int(batch_size))
    parts = (
        ("padded image", FLOAT32 * in_channels * pad_voxels if extra else 0),
        ("weight sum", FLOAT32 * grid_voxels),
        ("Gaussian", _GAUSSIAN_BYTES * tile),
        ("tile batch", FLOAT32 * tile * (samples * in_channels * 2 + samples * n_classes * 2)),
        ("network activations", FLOAT32 * samples * activations if activations_on_host else 0),
    )
    basis = (f"patch {shape_text(patch)} on a model grid of {shape_text(grid)}"
             + (f" padded to {shape_text(padded)}" if extra else ""))
    return Footprint(parts, basis, source)


def monai_tiles(grid: Sequence[int], roi: Sequence[int], in_channels: int, n_classes: int,
                batch_size: int, activations: int, activations_on_host: bool = True,
                mirror: bool = False, source: str = "") -> Footprint:
    """Buffers of MONAI's ``sliding_window_inference`` as medseg calls it, beyond the
    model-grid image and the ``K`` class maps of the grid: the padded copy of the image, the
    padding of the output buffer, the count map, the importance map, a batch of windows with
    the predictor's outputs and softmax (and mirrored copies), and network activations."""
    padded = padded_to_patch(grid, roi)
    grid_voxels, pad_voxels = math.prod(int(g) for g in grid), math.prod(padded)
    extra = pad_voxels - grid_voxels
    tile = math.prod(int(r) for r in roi)
    samples = max(1, int(batch_size))
    copies = 3 if mirror else 2
    parts = (
        ("padded image", FLOAT32 * in_channels * pad_voxels if extra else 0),
        ("output padding", FLOAT32 * n_classes * extra),
        ("count map", FLOAT32 * pad_voxels),
        ("importance map", FLOAT32 * 2 * tile),
        ("window batch", FLOAT32 * samples * tile * (in_channels * copies
                                                     + n_classes * (copies + 1))),
        ("network activations", FLOAT32 * samples * activations if activations_on_host else 0),
    )
    basis = (f"patch {shape_text(roi)} on a model grid of {shape_text(grid)}"
             + (f" padded to {shape_text(padded)}" if extra else ""))
    return Footprint(parts, basis, source)


def over_limit(needed: int, limit: int) -> str:
    """The end of a refusal: ``about N bytes (1.2 GiB), more than the limit of ...``."""
    return (f"about {int(needed)} bytes ({human_bytes(needed)}), more than the limit of "
            f"{int(limit)} bytes (MEDSEG_MAX_MEMORY_BYTES)")
