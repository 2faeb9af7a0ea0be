"""Seconds per slice of MedSAM's pipeline on this machine: the small random SAM of the
fixtures (``sample_data/sam/tiny_medsam``) and a random-initialised network of SAM ViT-B's exact
shape (768 wide, 12 blocks, 12 heads, global attention in blocks 2, 5, 8, 11: what
``medsam_vit_b.pth`` fills), each on a real CT slice resized to 1024 x 1024.

    python bench/bench_sam.py [--device cpu|cuda] [--repeat 2]

Prints, per network: the image preparation (resize to 1024), the image encoder and the mask
decoder (one box), as the median of ``--repeat`` runs after one warm-up, in wall-clock and in
process CPU seconds (the CPU seconds hold on a busy machine; wall-clock on an idle one is about
CPU seconds / threads for the encoder), and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medseg.io import read_image
from medseg.models.sam.config import SamConfig
from medseg.models.sam.folder import read_folder
from medseg.models.sam.model import SamModel
from medseg.models.sam.network import SamNetwork
from medseg.models.sam.preprocessing import slice_input, volume_to_uint8
from medseg.models.sam.slices import slice_image

ROOT = Path(__file__).resolve().parents[1]


def _vit_b_folder(tmp: Path) -> Path:
    torch.save(SamNetwork(SamConfig()).state_dict(), tmp / "vit_b.pth")
    (tmp / "sam.json").write_text('{"format": "sam", "variant": "medsam_vit_b", '
                                  '"checkpoint": "vit_b.pth"}')
    return tmp


def _time(fn, repeat: int) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds of ``fn`` (after one warm-up call)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    ct = read_image(ROOT / "sample_data/real_ct/lung2_upper_abdomen.nii.gz")
    image = slice_image(volume_to_uint8(ct.array[0], "ct"), 2, 12)
    box = np.array([30.0, 40.0, 95.0, 100.0])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in (("tiny (fixtures)", ROOT / "sample_data/sam/tiny_medsam"),
                             ("SAM ViT-B shape", None)):
            model = SamModel(read_folder(folder or _vit_b_folder(Path(tmp))), args.device)
            _report(name, model, image, box, args.repeat)


def _report(name: str, model: SamModel, image: np.ndarray, box: np.ndarray,
            repeat: int) -> None:
    size = model.config.image_size
    x = slice_input(image, size).to(model.device)
    prep = _time(lambda: slice_input(image, size), repeat)
    enc = _time(lambda: model.net.embed(x), repeat)
    emb = model.net.embed(x)
    dec = _time(lambda: model.probability(model.low_res_logits(emb, image.shape, box),
                                          image.shape), repeat)
    params = sum(p.numel() for p in model.net.parameters()) / 1e6
    print(f"{name:16s} {params:6.1f} M parameters, seconds wall (CPU): prepare "
          f"{prep[0]:.2f} ({prep[1]:.2f}), encoder {enc[0]:.2f} ({enc[1]:.2f}), decoder "
          f"{dec[0]:.3f} ({dec[1]:.3f}), slice {prep[0] + enc[0] + dec[0]:.2f} "
          f"({prep[1] + enc[1] + dec[1]:.2f})")

if __name__ == "__main__":
    main()
