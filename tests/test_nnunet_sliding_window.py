"""The nnU-Net sliding window computes each tile (and each mirrored copy) exactly once, a lone
last tile alone, frees a batch's outputs before the next batch, and gives the sums nnU-Net's
padded buffers give.

The networks are real ``torch.nn`` modules that record what they are given. The per-voxel
``_Recorder`` uses only elementwise arithmetic, so a sample's output is bit for bit the same
whatever batch it runs in: results must then be *equal* across batch sizes. The reference for
the buffers is nnU-Net's own scheme written out plainly here (buffers over the padded image,
every tile added whole, cropped at the end). The real fixture network (model B,
``tests/fixtures/nnunet``) is counted with a forward pre-hook. Agreement with nnU-Net's own
masks is in ``test_nnunet_equivalence.py``. Last, a one-fold model keeps one copy of its weights.
"""

from __future__ import annotations

import itertools
import math
import weakref

import pytest
import torch

from medseg.engine.segmenter import InferenceSettings
from medseg.io import read_image
from medseg.models import load_model
from medseg.models.nnunet.checkpoint import read_checkpoint
from medseg.models.nnunet.sliding_window import (
    gaussian_importance,
    mirror_combinations,
    mirrored_forward,
    padding,
    sliding_window_logits,
    tile_starts,
)
from tests.nnunet_fixture import INPUTS, MODEL_A, MODEL_B


class _Recorder(torch.nn.Module):
    """``K = 3`` classes from each voxel by elementwise arithmetic; records every input
    sample, the size of every call, and checks that the previous call's output is gone."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[torch.Tensor] = []
        self.calls: list[int] = []
        self.held_previous = 0
        self._last: weakref.ref | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._last is not None and self._last() is not None:
            self.held_previous += 1
        self.calls.append(int(x.shape[0]))
        self.samples.extend(s.clone() for s in x)
        out = torch.cat([x[:, :1] * 2.0 + 1.0, x[:, :1] * x[:, 1:2] - 0.5,
                         x[:, 1:2] * -3.0 + x[:, :1]], dim=1)
        self._last = weakref.ref(out)
        return out


def _image(shape: tuple[int, ...]) -> torch.Tensor:
    """``shape`` (two channels first): every voxel's linear index (exact in float32) + 1, and
    noise."""
    torch.manual_seed(0)
    spatial = shape[1:]
    index = torch.arange(math.prod(spatial), dtype=torch.float32).reshape(spatial)
    return torch.stack([index + 1.0, torch.randn(spatial)])


def _expected_tiles(image: torch.Tensor, patch: tuple[int, ...], step: float
                    ) -> list[torch.Tensor]:
    """Every tile of the zero-padded image, in nnU-Net's order (written out independently)."""
    pads = padding(image.shape[-len(patch):], patch)
    flat = [v for pair in reversed(pads) for v in pair]
    padded = torch.nn.functional.pad(image, flat)
    lead = image.dim() - 1 - len(patch)
    starts = tile_starts(padded.shape[1 + lead:], patch, step)
    tiles = []
    for d in range(padded.shape[1]) if lead else [None]:
        for corner in itertools.product(*starts):
            box = tuple(slice(s, s + p) for s, p in zip(corner, patch, strict=True))
            tiles.append(padded[(slice(None), d, *box)] if lead else padded[(slice(None), *box)])
    return tiles


def _times_seen(samples: list[torch.Tensor], tile: torch.Tensor) -> int:
    return sum(1 for s in samples if s.shape == tile.shape and torch.equal(s, tile))


CASES = [((2, 30, 41, 17), (8, 16, 16), 0.5),   # 3D, padded along the last axis, 12 tiles
         ((2, 9, 20, 20), (8, 16, 16), 0.5),    # 3D, 2 x 3 x 3 = 18 tiles
         ((2, 5, 40, 33), (16, 16), 0.5),       # 2D slices: 5 x 4 x 3 = 60 tiles
         ((2, 7, 12, 10), (8, 16, 16), 0.5)]    # smaller than the patch: one padded tile


@pytest.mark.parametrize(("shape", "patch", "step"), CASES)
@pytest.mark.parametrize("batch", [1, 2, 4])
def test_each_tile_is_computed_exactly_once(shape, patch, step, batch):
    image = _image(shape)
    tiles = _expected_tiles(image, patch, step)
    net = _Recorder()
    with torch.no_grad():
        sliding_window_logits(image, patch, step, [mirrored_forward(net, None,
                                                                    torch.device("cpu"), batch)],
                              3, batch_size=batch)
    assert len(net.samples) == len(tiles)  # no tile twice, none padded into a batch
    assert all(_times_seen(net.samples, t) == 1 for t in tiles)
    full, lone = divmod(len(tiles), batch)
    assert net.calls == [batch] * full + ([lone] if lone else [])
    assert net.held_previous == 0  # a batch's outputs were freed before the next batch ran


def test_a_lone_last_tile_runs_alone_and_mirrored_copies_once_each():
    shape, patch = (2, 9, 20, 20), (8, 16, 16)  # 18 tiles: odd per batch of 4 -> lone last
    image = _image(shape)
    tiles = _expected_tiles(image, patch, 0.5)
    axes = (0, 2)
    net = _Recorder()
    with torch.no_grad():
        sliding_window_logits(image, patch, 0.5, [mirrored_forward(net, axes,
                                                                    torch.device("cpu"), 3)],
                              3, batch_size=1)
    combos = [(), *mirror_combinations(axes)]
    assert len(net.samples) == len(tiles) * len(combos)
    for tile in tiles:
        for flip in combos:
            copy = torch.flip(tile, [a + 1 for a in flip]) if flip else tile
            assert _times_seen(net.samples, copy) == 1, flip
    # per tile: 4 copies in batches of 3, the last one alone
    assert net.calls == [3, 1] * len(tiles)
    assert net.held_previous == 0


def _padded_reference(image, patch, step, net, folds, mirror, dtype):
    """nnU-Net's scheme: buffers over the padded image, every tile added whole, one tile at
    a time, mirrored copies averaged, folds averaged; cropped at the end."""
    pads = padding(image.shape[-len(patch):], patch)
    padded = torch.nn.functional.pad(image, [v for pair in reversed(pads) for v in pair])
    spatial = tuple(padded.shape[1:])
    lead = len(spatial) - len(patch)
    starts = tile_starts(spatial[lead:], patch, step)
    boxes = [(*([d] if lead else []), *(slice(s, s + p) for s, p in zip(c, patch, strict=True)))
             for d in (range(spatial[0]) if lead else [None])
             for c in itertools.product(*starts)]
    gauss = gaussian_importance(patch, dtype=dtype)
    combos = [(), *mirror_combinations(mirror)]
    total = None
    for _ in range(folds):
        logits = torch.zeros((3, *spatial), dtype=dtype)
        weights = torch.zeros(spatial, dtype=dtype)
        for box in boxes:
            x = padded[(slice(None), *box)][None]
            pred = torch.zeros((1, 3, *patch))
            for flip in combos:
                dims = [a + 2 for a in flip]
                y = net(torch.flip(x, dims) if flip else x)
                pred += torch.flip(y, dims) if flip else y
            if len(combos) > 1:
                pred /= len(combos)
            pred = pred[0] * gauss
            logits[(slice(None), *box)] += pred
            weights[box] += gauss
        if dtype == torch.float32:
            total = logits / weights if total is None else total + logits / weights
        else:
            torch.div(logits, weights, out=logits)
            total = logits if total is None else total + logits
    total /= folds
    crop = [slice(None)] * lead + [slice(a, s - b) for (a, b), s in
                                   zip(pads, spatial[lead:], strict=True)]
    return total[(slice(None), *crop)]


@pytest.mark.parametrize(("shape", "patch", "step"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_equal_to_nnunets_padded_buffers_at_every_batch_size(shape, patch, step, dtype):
    image = _image(shape)
    image[0] /= image[0].max()  # keep float16 sums in range
    mirror = (0, 1) if len(patch) == 2 else (1, 2)
    net = _Recorder()
    with torch.no_grad():
        reference = _padded_reference(image, patch, step, net, 2, mirror, dtype)
        results = [sliding_window_logits(
            image, patch, step, [mirrored_forward(net, mirror, torch.device("cpu"), b)
                                 for _ in range(2)], 3, batch_size=b, dtype=dtype)
            for b in (1, 2, 3)]
    assert results[0].shape == (3, *shape[1:]) and results[0].dtype == dtype
    assert results[0].is_contiguous()
    for r in results[1:]:
        assert torch.equal(r, results[0])  # batching never changes a tile's sums
    if dtype == torch.float16:
        assert torch.equal(results[0], reference)  # nnU-Net's float16 buffers, bit for bit
    else:  # float32: the folds are summed before one division here, after two there
        torch.testing.assert_close(results[0], reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("case", "batch", "tiles"), [("brain_100", 2, 1),
                                                      ("brain_101", 2, None)])
def test_the_fixture_network_sees_each_tile_once(case, batch, tiles):
    """Model B (nnU-Net's own training) on its inputs: forward calls counted on the network
    itself; a one-tile image is one call of one sample (it used to be two samples)."""
    model = load_model(MODEL_B)
    settings = InferenceSettings(mirror=False, device="cpu", sw_batch_size=batch, overlap=0.5)
    prepared = model.prepare(read_image(INPUTS / "B" / f"{case}_0000.nii.gz"), settings)
    spatial = tuple(prepared.image.shape[1:])
    patch = tuple(model.definition.config.patch_size)
    padded = [max(s, p) for s, p in zip(spatial, patch, strict=True)]
    expected = math.prod(len(s) for s in tile_starts(padded, patch, 0.5))
    if tiles is not None:
        assert expected == tiles
    calls: list[int] = []
    hook = model.net.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    try:
        logits = model.logits(prepared, settings)
    finally:
        hook.remove()
    per_fold = [batch] * (expected // batch) + ([1] if expected % batch else [])
    assert calls == per_fold * len(model.checkpoints)  # every fold sees each tile once
    assert tuple(logits.shape[1:]) == spatial


def test_a_one_fold_model_keeps_no_second_copy_of_its_weights():
    """The network holds a one-fold model's weights for good, so the checkpoint's state dict
    is let go; with several folds each fold's stays, to be loaded in turn."""
    one = load_model(MODEL_A, folds=["0"])
    assert [ck.weights for ck in one.checkpoints] == [{}]
    stored = read_checkpoint(MODEL_A / "fold_0" / "checkpoint_final.pth").weights
    for name, value in one.net.state_dict().items():
        assert torch.equal(value, stored[name]), name
    both = load_model(MODEL_A)
    assert len(both.checkpoints) == 2 and all(ck.weights for ck in both.checkpoints)
