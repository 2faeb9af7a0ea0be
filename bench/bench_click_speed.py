"""Seconds per click of a promptable model on a CT-sized grid, against its network alone.

The bundled phantoms are small (96 x 96 x 60); a clinical CT is 100 times larger, and every
step of a click that touches the whole grid (reading the crop, putting the answer back, QC,
the volume table) grows with it while the network's crop does not. This bench upsamples the
held-out phantom ``abdomen_101`` by ``--factor`` on every axis (4: 384 x 384 x 240, 35 M
voxels at 1 x 1 x 1.25 mm), runs ``--clicks`` simulated clicks on its spleen through
:class:`medseg.engine.interactive.PromptSession` (the protocol of ``bench_interactive.py``),
and times, in the same process:

* each click's wall time (the whole answer: crop, network, paste back, QC);
* the baseline: the model's network alone on one crop-sized input (MONAI's UNet forward,
  median of 10 after a warm-up), what a click would cost if nothing but the network ran.

Prints both and their ratio (the overhead of working on the whole grid) and writes
``bench/results/click_speed.json``.

    python bench/bench_click_speed.py [-m sample_data/models/click3d] [--factor 4]
        [--clicks 5] [--structure 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from medseg.engine.interactive import PromptSession
from medseg.engine.segmenter import Segmenter
from medseg.evaluation.interactive_run import check_pair
from medseg.models import load_model
from medseg.prompts.simulate import first_click, next_click
from medseg.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sample_data" / "Dataset002_AbdomenCT"


def upsampled(factor: int, label: int) -> tuple[Volume, np.ndarray]:
    """The held-out phantom and one structure's reference, ``factor`` times finer per axis."""
    image, labels = check_pair(DATA / "imagesTs" / "abdomen_101_0000.nii.gz",
                               DATA / "labelsTs" / "abdomen_101.nii.gz")
    zoom = (factor,) * 3
    big = ndimage.zoom(image.array[0].astype(np.float32), zoom, order=1)
    ref = ndimage.zoom((labels.data == label).astype(np.float32), zoom, order=1) > 0.5
    affine = image.affine.copy()
    affine[:3, :3] = affine[:3, :3] / factor
    return Volume.from_spatial(big, affine), ref


def network_seconds(model, repeat: int = 10) -> float:
    """Median wall time of the model's network on one crop-sized input."""
    net = model.net
    x = torch.randn(1, len(model.channels), *(model.policy.size,) * 3)
    with torch.no_grad():
        net(x)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--model", default=str(ROOT / "sample_data" / "models" / "click3d"))
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--structure", type=int, default=2, help="label value (2: spleen)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "click_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    volume, ref = upsampled(args.factor, args.structure)
    model = load_model(args.model)
    session = PromptSession(Segmenter(model), volume, "bench")
    click = first_click(ref, volume.spacing)
    seconds, dice = [], []
    for _ in range(args.clicks):
        if click is None:
            break
        start = time.perf_counter()
        mask = session.add_point(click.position, click.positive)
        seconds.append(time.perf_counter() - start)
        dice.append(float(2 * (mask & ref).sum() / (mask.sum() + ref.sum())))
        click = next_click(mask, ref, volume.spacing)
    network = network_seconds(model)
    per_click = statistics.median(seconds)
    result = {
        "model": os.path.relpath(args.model, ROOT),
        "grid": list(volume.spatial_shape), "voxels": int(np.prod(volume.spatial_shape)),
        "spacing_mm": [round(float(s), 3) for s in volume.spacing],
        "seconds_per_click": [round(s, 3) for s in seconds],
        "median_seconds_per_click": round(per_click, 3),
        "network_seconds": round(network, 4),
        "ratio_click_to_network": round(per_click / network, 1),
        "dice_per_click": [round(d, 3) for d in dice],
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform()},
    }
    print(f"grid {' x '.join(map(str, result['grid']))} ({result['voxels'] / 1e6:.1f} M voxels)")
    print(f"seconds per click: {result['seconds_per_click']} (median {per_click:.3f})")
    print(f"network alone on one crop: {network:.4f} s; a click costs "
          f"{result['ratio_click_to_network']}x that")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
