"""The click3d training loop: mixed synthetic and real crops, simulated click rounds with the
current network, Dice + BCE, a time-based cosine learning rate, a validation Dice on a fixed
held-out synthetic set, and the model folder written as it goes (a checkpoint is a complete,
loadable model).

The network runs on ``settings.device`` (``auto``: CUDA when present, with float16 autocast and
a gradient scaler there; float32 on CPU). With ``settings.workers`` > 0 the crops are drawn in
that many worker processes (:mod:`.feed`) while the network steps; with 0 they are drawn in
this process, between steps."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medseg.models.click3d.config import write_model
from medseg.models.click3d.guidance import CHANNELS
from medseg.models.click3d.network import build_network, widen_inputs
from medseg.ops.device import autocast, resolve_device
from medseg.training.click3d.clicks import PromptState, correct, encode_batch, initial_prompts
from medseg.training.click3d.feed import crop_loader, draw_crop
from medseg.training.click3d.heads import HeadPool
from medseg.training.click3d.settings import TrainSettings
from medseg.training.click3d.shapes import synthetic_crop
from medseg.training.click3d.sources import Case


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice (per sample) plus binary cross-entropy; ``B, 1, *spatial`` logits."""
    p = torch.sigmoid(logits)
    dims = tuple(range(1, p.dim()))
    dice = 1 - (2 * (p * target).sum(dims) + 1) / (p.sum(dims) + target.sum(dims) + 1)
    return dice.mean() + F.binary_cross_entropy_with_logits(logits, target)


def dice(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _device_of(net: torch.nn.Module) -> torch.device:
    return next(net.parameters()).device


@torch.no_grad()
def predict_masks(net: torch.nn.Module, images, states, sigma: float) -> list[torch.Tensor]:
    """The network's masks (on the CPU, where the simulated clicks are placed)."""
    device = _device_of(net)
    with autocast(device):
        logits = net(encode_batch(images, states, sigma).to(device))
    return [m[0] for m in (logits > 0).cpu()]


def validation_set(n: int, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    return [synthetic_crop(n, rng, gen) for _ in range(count)]


@torch.no_grad()
def validate(net: torch.nn.Module, data, sigma: float, clicks: int = 3) -> list[float]:
    """Mean Dice after 1..``clicks`` deterministic simulated clicks."""
    net.eval()
    images = [im for im, _ in data]
    states = [PromptState() for _ in data]
    for st, (_, t) in zip(states, data, strict=True):
        correct(st, torch.zeros_like(t), t, None)
        st.prior = None
    out = []
    for k in range(clicks):
        preds = predict_masks(net, images, states, sigma)
        out.append(float(np.mean([dice(p, t) for p, (_, t) in zip(preds, data, strict=True)])))
        if k + 1 < clicks:
            for st, p, (_, t) in zip(states, preds, data, strict=True):
                correct(st, p, t, None)
    return out


def model_document(s: TrainSettings, name: str, version: str, training: dict[str, Any]
                   ) -> dict[str, Any]:
    return {"format": "click3d", "name": name, "version": version,
            "architecture": {"name": "monai_unet",
                             "params": {"channels": list(s.channels), "strides": list(s.strides),
                                        "num_res_units": s.num_res_units}},
            "crop": asdict(s.crop),
            "guidance": {"channels": list(CHANNELS), "sigma_voxels": s.sigma_voxels,
                         "normalise_percentiles": [0.5, 99.5]},
            "training": training}


def train(out: str | Path, cases: Sequence[Case], settings: TrainSettings, *,
          name: str = "click3d", version: str = "1.0", data_note: str = "",
          log: Callable[[dict[str, Any]], None] | None = None,
          init: dict[str, torch.Tensor] | None = None,
          earlier: Sequence[dict[str, Any]] = (),
          heads: HeadPool | None = None) -> dict[str, Any]:
    """Train for ``settings.seconds`` (or ``max_iterations``) and write the model folder
    ``out`` at every checkpoint and at the end; returns the training facts. ``init``: a state
    dict to start from (an earlier stage, whose facts ``earlier`` are kept in the record);
    ``heads``: synthetic heads drawn from with probability ``settings.p_head``. An ``init``
    trained with fewer guidance channels (v1.1 had no ``similarity``) is widened with zero
    weights for the new ones."""
    s = settings
    torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    rng, gen = np.random.default_rng(s.seed), torch.Generator().manual_seed(s.seed)
    device = resolve_device(s.device)
    # the crop workers start before the network reaches CUDA (a forked process must not
    # inherit a CUDA context it could touch)
    batches = iter(crop_loader(cases, s, heads)) if s.workers > 0 else None
    net = build_network("monai_unet", {"channels": list(s.channels), "strides": list(s.strides),
                                       "num_res_units": s.num_res_units}, len(CHANNELS))
    if init is not None:
        net.load_state_dict(widen_inputs({k: v.float() for k, v in init.items()}, net))
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=s.lr, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    val = validation_set(s.crop.size, 16, 10_000 + s.seed)
    start, it = time.monotonic(), 0
    losses: list[float] = []
    history: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}

    def save(final: bool) -> None:
        facts.update({"iterations": it + sum(int(e.get("iterations", 0)) for e in earlier),
                      "seconds": round(time.monotonic() - start, 1)
                      + sum(float(e.get("seconds", 0)) for e in earlier),
                      "stages": [*earlier, {"iterations": it, "seconds": round(
                          time.monotonic() - start, 1), "lr": s.lr,
                          "margin_range": list(s.margin_range),
                          "p_synthetic": s.p_synthetic, "p_large": s.p_large,
                          "p_head": s.p_head if heads is not None else 0.0,
                          "device": device.type, "workers": s.workers}],
                      "batch": s.batch, "data": data_note, "validation": history[-1:] or None,
                      "settings": {k: v for k, v in asdict(s).items() if k != "crop"},
                      "complete": final})
        write_model(out, model_document(s, name, version, facts),
                    {k: v.detach().cpu() for k, v in net.state_dict().items()})

    while it < s.max_iterations and time.monotonic() - start < s.seconds:
        frac = min((time.monotonic() - start) / s.seconds, 1.0)
        for g in opt.param_groups:
            g["lr"] = s.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        if batches is not None:
            images, targets, states = next(batches)
        else:
            if heads is not None and it and it % s.head_refresh_every == 0:
                heads.refresh()
            crops = [draw_crop(cases, s, rng, gen, heads) for _ in range(s.batch)]
            images, targets = [c[0] for c in crops], [c[1] for c in crops]
            states = [initial_prompts(t, rng) for t in targets]
        rounds = int(rng.choice(len(s.rounds), p=np.asarray(s.rounds) / sum(s.rounds)))
        if it < 100:
            rounds = 0  # an untrained network's errors are no guide
        net.eval()
        for _ in range(rounds):
            for st, p, t in zip(states, predict_masks(net, images, states, s.sigma_voxels),
                                targets, strict=True):
                correct(st, p, t, rng)
        net.train()
        x = encode_batch(images, states, s.sigma_voxels).to(device)
        y = torch.stack([t.float()[None] for t in targets]).to(device)
        with autocast(device):
            logits = net(x)
        loss = dice_bce(logits.float(), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss.detach()))
        it += 1
        if it % s.validate_every == 0 or it == 1:
            entry = {"iteration": it, "seconds": round(time.monotonic() - start, 1),
                     "loss": round(float(np.mean(losses[-s.validate_every:])), 4),
                     "lr": round(opt.param_groups[0]["lr"], 6),
                     "val_dice_clicks_1_2_3": [round(v, 4) for v in
                                               validate(net, val, s.sigma_voxels)]}
            history.append(entry)
            if log:
                log(entry)
        if it % s.checkpoint_every == 0:
            save(False)
    entry = {"iteration": it, "seconds": round(time.monotonic() - start, 1),
             "loss": round(float(np.mean(losses[-s.validate_every:])), 4) if losses else None,
             "val_dice_clicks_1_2_3": [round(v, 4) for v in validate(net, val, s.sigma_voxels)]}
    history.append(entry)
    if log:
        log(entry)
    save(True)
    del batches  # ends the workers
    return facts


def json_logger(path: str | Path) -> Callable[[dict[str, Any]], None]:
    def log(entry: dict[str, Any]) -> None:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
    return log
