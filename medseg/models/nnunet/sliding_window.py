"""nnU-Net's sliding-window prediction: its tile placement, Gaussian importance map, padding,
test-time mirroring and fold ensembling, reproduced.

* The image (``C, *spatial``, nnU-Net axes) is padded with zeros to at least the patch size,
  the padding split evenly with the odd voxel after the content (acvl_utils' ``pad_nd_image``).
* Tiles start at ``round(i * (size - patch) / (n - 1))`` with ``n = ceil((size - patch) /
  (patch * step)) + 1`` per axis (``compute_steps_for_sliding_window``); a 2D configuration
  runs on every slice along the first axis.
* Each tile's logits are weighted by a Gaussian (sigma = patch / 8, peak 10, zeros replaced by
  the smallest non-zero weight) and the weighted sum is divided by the summed weights.
* Mirroring averages the logits over every combination of the allowed axes (plus none).
* Folds: nnU-Net averages the folds' logits; being linear, the folds run one after the other
  into one buffer (one network, one fold's weights loaded at a time).

Logits are accumulated in float32 (nnU-Net uses float16 buffers; ``dtype=torch.float16``
gives those). Each tile and mirrored copy is computed once, a lone last one alone (nnU-Net runs
every tile alone); a batch's outputs are dropped before the next batch runs; the logit and
weight buffers cover the image, not its padding (a tile adds only its part inside the image,
the same sums nnU-Net forms before it crops its padded buffers).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from medseg.ops.device import autocast


def every_channel(spatial: Iterable[Any]) -> tuple[Any, ...]:
    """An index selecting every channel and ``spatial`` (slices or ints) after it."""
    return (slice(None), *spatial)


def tile_starts(image_size: Sequence[int], tile_size: Sequence[int],
                step: float) -> list[list[int]]:
    """Start index of every tile along each axis (nnU-Net's placement)."""
    steps = []
    for size, tile in zip(image_size, tile_size, strict=True):
        n = math.ceil((size - tile) / (tile * step)) + 1
        stride = (size - tile) / (n - 1) if n > 1 else 0.0
        steps.append([int(np.round(stride * i)) for i in range(n)])
    return steps


def gaussian_importance(tile_size: Sequence[int], sigma_scale: float = 1.0 / 8,
                        peak: float = 10.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """nnU-Net's ``compute_gaussian`` (its float16 with ``dtype=torch.float16``)."""
    impulse = np.zeros(tuple(tile_size))
    impulse[tuple(s // 2 for s in tile_size)] = 1
    g = gaussian_filter(impulse, [s * sigma_scale for s in tile_size], 0, mode="constant",
                        cval=0)
    g /= np.max(g) / peak
    out = torch.from_numpy(g).to(dtype)
    zero = out == 0
    if bool(zero.any()):
        out[zero] = out[~zero].min()
    return out


def padding(shape: Sequence[int], patch: Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) padding per trailing axis so each is at least the patch size."""
    out = []
    for s, p in zip(shape, patch, strict=True):
        diff = max(p - s, 0)
        out.append((diff // 2, diff - diff // 2))
    return out


def mirror_combinations(axes: Sequence[int] | None) -> list[tuple[int, ...]]:
    """Every non-empty combination of the spatial mirroring axes."""
    if not axes:
        return []
    axes = [int(a) for a in axes]
    return [c for r in range(1, len(axes) + 1) for c in itertools.combinations(axes, r)]


def _logits(out: object) -> torch.Tensor:
    if isinstance(out, (list, tuple)):
        out = out[0]
    assert isinstance(out, torch.Tensor)
    return out


def _flip(x: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Flip spatial ``axes`` of one sample ``C, *spatial``."""
    return torch.flip(x, [a + 1 for a in axes]) if axes else x


def mirrored_forward(net: torch.nn.Module, mirror_axes: Sequence[int] | None,
                     device: torch.device,
                     batch_size: int = 2) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x (B, C, *patch) -> logits (B, K, *patch)`` averaged over the mirror combinations,
    float32 on the CPU.

    Without mirroring ``x`` goes through the network as it is, and its output is the answer.
    With mirroring the tiles and their mirrored copies go through the network in batches of
    ``batch_size`` (a lone last one alone), each computed once, and are summed into one
    buffer in nnU-Net's order (unflipped first)."""
    combos: list[tuple[int, ...]] = [(), *mirror_combinations(mirror_axes)]
    chunk = max(1, int(batch_size))

    def add(total: torch.Tensor, part: list[tuple[tuple[int, ...], int]],
            out: torch.Tensor) -> None:
        for (axes, i), pred in zip(part, out, strict=True):
            total[i] += _flip(pred, axes)

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device)
        with autocast(device):
            if len(combos) == 1:
                return _logits(net(x)).float().cpu()
            items = [(axes, i) for axes in combos for i in range(x.shape[0])]
            total: torch.Tensor | None = None
            for start in range(0, len(items), chunk):
                part = items[start:start + chunk]
                out = _logits(net(torch.stack([_flip(x[i], axes) for axes, i in part]))).float()
                if total is None:
                    total = torch.zeros((x.shape[0], *out.shape[1:]), dtype=torch.float32,
                                        device=out.device)
                add(total, part, out)
                del out  # not held while the next batch runs
        assert total is not None
        total /= len(combos)
        return total.cpu()

    return forward


def _tiles(shape: Sequence[int], patch: Sequence[int], step: float) -> Iterator[tuple]:
    """Slicers over the spatial axes of the padded image (3D, or 2D slices of a 3D image)."""
    if len(patch) < len(shape):
        starts = tile_starts(shape[1:], patch, step)
        for d in range(shape[0]):
            for corner in itertools.product(*starts):
                yield (d, *[slice(s, s + p) for s, p in zip(corner, patch, strict=True)])
    else:
        for corner in itertools.product(*tile_starts(shape, patch, step)):
            yield tuple(slice(s, s + p) for s, p in zip(corner, patch, strict=True))


Tile = tuple[tuple, tuple, tuple]


def _placed_tiles(shape: Sequence[int], pads: Sequence[tuple[int, int]],
                  patch: Sequence[int], step: float) -> list[Tile]:
    """Each tile of the padded image (``shape``) as (its slicer there, where its part inside
    the image lies in the unpadded image, which part of the tile that is)."""
    offset = len(shape) - len(patch)
    out = []
    for tile in _tiles(shape, patch, step):
        target, source = list(tile[:offset]), []
        for sl, (before, after), size in zip(tile[offset:], pads, shape[offset:], strict=True):
            lo, hi = max(sl.start, before), min(sl.stop, size - after)
            target.append(slice(lo - before, hi - before))
            source.append(slice(lo - sl.start, hi - sl.start))
        out.append((tile, tuple(target), tuple(source)))
    return out


def _add_batch(logits: torch.Tensor, weights: torch.Tensor | None, batch: list[Tile],
               out: torch.Tensor, gauss: torch.Tensor) -> None:
    """Add each tile's Gaussian-weighted logits (``out``, ``B, K, *patch``) inside the image
    into ``logits``, and the Gaussian into ``weights`` (unless None)."""
    for (_, target, source), pred in zip(batch, out, strict=True):
        part = pred[every_channel(source)]
        part *= gauss[source]
        logits[every_channel(target)] += part
        if weights is not None:
            weights[target] += gauss[source]


def _run_tiles(image: torch.Tensor, tiles: list[Tile], forward: Callable, size: int,
               logits: torch.Tensor, weights: torch.Tensor | None,
               gauss: torch.Tensor) -> None:
    """``forward`` on every tile once, in batches of ``size`` (a lone last tile alone); each
    batch's outputs are freed before the next batch runs."""
    for start in range(0, len(tiles), size):
        batch = tiles[start:start + size]
        _add_batch(logits, weights, batch,
                   forward(torch.stack([image[every_channel(t[0])] for t in batch])), gauss)


def sliding_window_logits(image: torch.Tensor, patch: Sequence[int], step: float,
                          forwards: Iterable[Callable[[torch.Tensor], torch.Tensor]],
                          n_classes: int, batch_size: int = 1,
                          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Gaussian-weighted logits ``K, *spatial`` of ``image`` (``C, *spatial``), averaged over
    ``forwards`` (one per fold; each is fetched only when its turn comes, so a generator can
    load one fold's weights at a time into one network).

    ``dtype=torch.float16`` reproduces nnU-Net's own buffers bit for bit: a float16 Gaussian,
    each tile's float32 logits times it added into float16 sums, divided per fold in float16,
    the folds' results summed and divided by their number (half the memory of float32)."""
    if dtype != torch.float32:
        return _logits_as_nnunet(image, patch, step, forwards, n_classes, batch_size, dtype)
    spatial = tuple(image.shape[1:])
    image, pads = _padded(image, patch)
    tiles = _placed_tiles(tuple(image.shape[1:]), pads, patch, step)
    logits = torch.zeros((n_classes, *spatial), dtype=torch.float32)
    weights = torch.zeros(spatial, dtype=torch.float32)
    gauss = gaussian_importance(patch)
    rounds = 0
    for forward in forwards:
        rounds += 1
        _run_tiles(image, tiles, forward, max(1, batch_size), logits,
                   weights if rounds == 1 else None, gauss)
    weights *= max(rounds, 1)
    logits /= weights
    return logits


def _padded(image: torch.Tensor, patch: Sequence[int]
            ) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    pads = padding(image.shape[-len(patch):], patch)
    if any(a or b for a, b in pads):
        flat = [v for pair in reversed(pads) for v in pair]
        image = torch.nn.functional.pad(image, flat, mode="constant", value=0.0)
    return image, pads


def _logits_as_nnunet(image: torch.Tensor, patch: Sequence[int], step: float,
                      forwards: Iterable[Callable[[torch.Tensor], torch.Tensor]],
                      n_classes: int, batch_size: int, dtype: torch.dtype) -> torch.Tensor:
    """:func:`sliding_window_logits` with nnU-Net's reduced-precision buffers."""
    spatial = tuple(image.shape[1:])
    image, pads = _padded(image, patch)
    gauss = gaussian_importance(patch, dtype=dtype)
    tiles = _placed_tiles(tuple(image.shape[1:]), pads, patch, step)
    weights = torch.zeros(spatial, dtype=dtype)
    for _, target, source in tiles:
        weights[target] += gauss[source]
    total: torch.Tensor | None = None
    folds = 0
    for forward in forwards:
        folds += 1
        logits = torch.zeros((n_classes, *spatial), dtype=dtype)
        _run_tiles(image, tiles, forward, max(1, batch_size), logits, None, gauss)
        torch.div(logits, weights, out=logits)
        if total is None:
            total = logits
        else:
            total += logits
        del logits
    assert total is not None
    if folds > 1:
        total /= folds
    return total


def softmax_inplace(logits: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Softmax over the class axis in slabs along the first spatial axis (no full copy)."""
    for start in range(0, logits.shape[1], chunk):
        slab = logits[:, start:start + chunk]
        slab.copy_(torch.softmax(slab, dim=0))
    return logits
