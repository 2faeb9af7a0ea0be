"""Simulated prompts for a training crop: the first click (or a box, or a rough mask to
refine), then correcting clicks at the centre of the current prediction's largest error
(:mod:`medseg.prompts.simulate`), everything in crop voxel coordinates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from medseg.models.click3d.guidance import encode
from medseg.prompts.simulate import first_click, next_click


@dataclass
class PromptState:
    positive: list[tuple[float, ...]] = field(default_factory=list)
    negative: list[tuple[float, ...]] = field(default_factory=list)
    boxes: list[tuple[tuple[float, ...], tuple[float, ...], int | None]] = field(
        default_factory=list)
    prior: torch.Tensor | None = None


def _bbox(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(mask)
    return idx.min(0).astype(float), idx.max(0).astype(float)


def jittered_box(target: np.ndarray, rng: np.random.Generator
                 ) -> tuple[tuple[float, ...], tuple[float, ...], int | None]:
    """The target's bounding box, each side moved by -5..+15 % of its extent; with
    probability 0.4 a 2-D box: the box of the target on one slice through its middle part."""
    n = target.shape[0]
    flat = None
    if rng.random() < 0.4:
        flat = int(rng.integers(3))
        along = np.flatnonzero(target.any(axis=tuple(a for a in range(3) if a != flat)))
        first, last = along.min(), along.max()
        k = round(float(first + (last - first) * rng.uniform(0.2, 0.8)))
        k = int(along[np.argmin(np.abs(along - k))])
        sl = np.zeros_like(target)
        idx = [slice(None)] * 3
        idx[flat] = slice(k, k + 1)
        sl[tuple(idx)] = target[tuple(idx)]
        lo, hi = _bbox(sl)
    else:
        lo, hi = _bbox(target)
    ext = hi - lo + 1
    lo = np.clip(lo - ext * rng.uniform(-0.05, 0.15, 3), 0, n - 1)
    hi = np.clip(hi + ext * rng.uniform(-0.05, 0.15, 3), 0, n - 1)
    if flat is not None:
        lo[flat] = hi[flat] = k
    return tuple(lo), tuple(hi), flat


def rough_mask(target: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A plausible earlier result: the target grown or shrunk and shifted a little."""
    x = target.float()[None, None]
    k = int(rng.choice([3, 5]))
    grow = rng.random() < 0.5
    x = F.max_pool3d(x, k, 1, k // 2) if grow else -F.max_pool3d(-x, k, 1, k // 2)
    shift = tuple(int(s) for s in rng.integers(-3, 4, size=3))
    return torch.roll(x[0, 0], shift, dims=(0, 1, 2)) > 0.5


def initial_prompts(target: torch.Tensor, rng: np.random.Generator, p_box: float = 0.25,
                    p_prior: float = 0.12) -> PromptState:
    """The prompts a user starts with."""
    ref = target.numpy()
    state = PromptState()
    r = rng.random()
    if r < p_box:
        state.boxes.append(jittered_box(ref, rng))
        if rng.random() < 0.5:
            return state
    elif r < p_box + p_prior:
        state.prior = rough_mask(target, rng)
        click = next_click(state.prior.numpy(), ref, rng=rng, spread=float(rng.uniform(0.3, 0.9)))
        if click is not None:
            (state.positive if click.positive else state.negative).append(click.position)
            return state
        state.prior = None
    spread = 1.0 if rng.random() < 0.3 else float(rng.uniform(0.2, 0.9))
    state.positive.append(first_click(ref, rng=rng, spread=spread).position)
    return state


def correct(state: PromptState, prediction: torch.Tensor, target: torch.Tensor,
            rng: np.random.Generator | None) -> None:
    """Add the click at the centre of the largest error of ``prediction``; it becomes the
    prior mask."""
    spread = 0.5 if rng is None else (1.0 if rng.random() < 0.3 else float(rng.uniform(0.3, 0.9)))
    click = next_click(prediction.numpy(), target.numpy(), rng=rng, spread=spread)
    state.prior = prediction.clone()
    if click is not None:
        (state.positive if click.positive else state.negative).append(click.position)


def encode_batch(images: Sequence[torch.Tensor], states: Sequence[PromptState],
                 sigma: float) -> torch.Tensor:
    """``B, C, n, n, n`` network input (:data:`.guidance.CHANNELS`)."""
    return torch.stack([encode(im, s.positive, s.negative, s.prior, s.boxes, sigma)
                        for im, s in zip(images, states, strict=True)])
