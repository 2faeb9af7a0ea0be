"""Benchmark: click3d training steps per second with the crops drawn in the training process
against drawn by worker processes (:mod:`medseg.training.click3d.feed`), in one process.

The data and recipe are those of ``sample_data/scripts/train_click3d.py`` (the shipped model's
last stage: 30 % synthetic crops, 20 % synthetic heads, the rest the bundled training splits),
the shipped network (48^3 crops, batch 4). Each configuration trains ``--iterations`` steps
from the same start; the rate is taken from its first step to its last, so the workers'
start-up (each draws its own pool of synthetic heads) is left out. Prints each rate and its
ratio to the in-process one, and writes ``bench/results/click3d_training_feed.json``.

    python bench/bench_click3d_training.py [--iterations 60] [--workers 0 1 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from medseg.training.click3d.heads import HeadPool, head_sources
from medseg.training.click3d.loop import TrainSettings, train
from medseg.training.click3d.sources import load_cases

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sample_data" / "scripts" / "train_click3d.py"


def recipe():
    """The training script's targets (imported from it, so the bench draws the same data)."""
    spec = importlib.util.spec_from_file_location("train_click3d", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rate(cases, heads, settings: TrainSettings) -> dict:
    """Steps per second between the first and the last step of a short run."""
    seen: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        train(Path(tmp) / "m", cases, settings, data_note="bench", heads=heads,
              log=lambda e: seen.__setitem__(e["iteration"], e["seconds"]))
    last = max(seen)
    return {"workers": settings.workers, "iterations": last,
            "steps_per_second": round((last - 1) / (seen[last] - seen[1]), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"
                                             / "click3d_training_feed.json"))
    args = parser.parse_args()
    script = recipe()
    data = ROOT / "sample_data"
    cases = (load_cases(data / "Dataset001_BrainTissue", script.BRAIN)
             + load_cases(data / "Dataset002_AbdomenCT", script.ABDOMEN))
    base = replace(TrainSettings(), seconds=1e9, max_iterations=args.iterations,
                   batch=args.batch, threads=args.threads, device=args.device, seed=7,
                   lr=5e-4, p_synthetic=0.3, p_head=0.2, p_large=0.5,
                   margin_range=(1.1, 3.0), validate_every=10**9, checkpoint_every=10**9)
    rows = []
    for workers in args.workers:
        heads = HeadPool(head_sources(data / "Dataset001_BrainTissue"), 12, 7)
        row = rate(cases, heads, replace(base, workers=workers))
        rows.append(row)
        print(f"workers {workers}: {row['steps_per_second']:.2f} steps/s", file=sys.stderr)
    first = rows[0]["steps_per_second"]
    print("| crops drawn by | steps/s | ratio |\n|---|---|---|")
    for row in rows:
        who = "the training process" if row["workers"] == 0 else f"{row['workers']} worker(s)"
        print(f"| {who} | {row['steps_per_second']:.2f} | "
              f"{row['steps_per_second'] / first:.2f} |")
    document = {"rows": rows, "device": args.device, "threads": args.threads,
                "batch": args.batch, "iterations": args.iterations,
                "cpus": os.cpu_count(), "torch": torch.__version__,
                "machine": platform.machine(), "load_average": [round(x, 2) for x in
                                                                os.getloadavg()],
                "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
