"""Train the shipped click3d model (sample_data/models/click3d) on the CPU, or on a GPU where
one is present (--device; --workers draws the crops in that many processes meanwhile).

Data: synthetic crops (random label maps, random contrasts) and the TRAINING splits of
Dataset001_BrainTissue (target: the whole brain, WM+GM+CSF) and Dataset002_AbdomenCT (targets:
liver, liver+lesion, spleen, aorta, vertebra, liver lesion). The kidneys (labels 3 and 4 of
Dataset002) are held out: never a target, only background. Test splits and the real scans
(sample_data/real_*) are never read.

    python sample_data/scripts/train_click3d.py --out sample_data/models/click3d \
        --seconds 2400 --log /tmp/click3d_train.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from medseg.training.click3d.heads import HeadPool, head_sources
from medseg.training.click3d.loop import TrainSettings, json_logger, train
from medseg.training.click3d.sources import Target, load_cases

ROOT = Path(__file__).resolve().parents[1]
BRAIN = (Target("brain", (1, 2, 3)),)
ABDOMEN = (Target("liver", (1,)), Target("liver_with_lesion", (1, 7), 0.5),
           Target("spleen", (2,)), Target("aorta", (5,)), Target("vertebra", (6,)),
           Target("liver_lesion", (7,)))
#: Dataset002 classes never used as a target (the "unseen class" of the acceptance)
HELD_OUT = (3, 4)
DATA_NOTE = ("synthetic random-shape crops (50%) + training splits of Dataset001_BrainTissue "
             "(whole brain) and Dataset002_AbdomenCT (liver, liver+lesion, spleen, aorta, "
             "vertebra, liver lesion); kidneys (Dataset002 labels 3, 4) held out as targets; "
             "no test split or real scan used")
HEAD_NOTE = ("; synthetic heads with skull, scalp and face around the Dataset001 training label "
             "maps (medseg.synth.generator), whole brain as the target")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "click3d")
    ap.add_argument("--seconds", type=float, default=2400.0)
    ap.add_argument("--iterations", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto",
                    help="where the network runs: auto (CUDA when present), cpu, cuda")
    ap.add_argument("--workers", type=int, default=0,
                    help="processes drawing crops while the network steps (0: in this one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-real", action="store_true", help="synthetic crops only")
    ap.add_argument("--init", type=Path, default=None,
                    help="a click3d model folder to continue from (an earlier stage)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--p-synthetic", type=float, default=0.5)
    ap.add_argument("--p-large", type=float, default=0.0,
                    help="probability that a synthetic target is drawn large")
    ap.add_argument("--margin-range", type=float, nargs=2, default=(1.1, 2.2),
                    help="object extent * this = crop extent, for the fine real crops "
                         "(below 1: the object is larger than the crop)")
    ap.add_argument("--p-head", type=float, default=0.0,
                    help="probability that a crop comes from a synthetic head with skull "
                         "(drawn from the Dataset001 training label maps)")
    ap.add_argument("--margin", type=float, default=1.4,
                    help="the model's second pass: crop extent = object extent * this")
    ap.add_argument("--rounds", type=float, nargs="+", default=None,
                    help="probabilities of 0, 1, 2, ... correcting rounds before a step "
                         "(default 0.4 0.25 0.2 0.15)")
    ap.add_argument("--version", default="1.2", help="the version written in click3d.json")
    ap.add_argument("--log", type=Path, default=None)
    args = ap.parse_args()
    assert not any(c in HELD_OUT for t in ABDOMEN for c in t.classes)
    t0 = time.monotonic()
    cases = [] if args.no_real else (
        load_cases(ROOT / "Dataset001_BrainTissue", BRAIN)
        + load_cases(ROOT / "Dataset002_AbdomenCT", ABDOMEN))
    print(f"{len(cases)} training cases loaded in {time.monotonic() - t0:.0f} s", flush=True)
    settings = replace(TrainSettings(), seconds=args.seconds, max_iterations=args.iterations,
                       batch=args.batch, threads=args.threads, seed=args.seed, lr=args.lr,
                       device=args.device, workers=args.workers,
                       p_synthetic=args.p_synthetic,
                       p_large=args.p_large, margin_range=tuple(args.margin_range),
                       p_head=args.p_head,
                       rounds=tuple(args.rounds or TrainSettings().rounds),
                       crop=replace(TrainSettings().crop, margin=args.margin))
    heads = None
    if args.p_head > 0:
        heads = HeadPool(head_sources(ROOT / "Dataset001_BrainTissue"), 12, args.seed)
    log = json_logger(args.log) if args.log else None
    init, earlier = None, []
    if args.init:
        init = torch.load(args.init / "model.pt", map_location="cpu", weights_only=True)
        record = json.loads((args.init / "click3d.json").read_text())["training"]
        earlier = record.get("stages") or [{"iterations": record["iterations"],
                                           "seconds": record["seconds"],
                                           "lr": record["settings"]["lr"],
                                           "margin_range": record["settings"]["margin_range"],
                                           "p_synthetic": record["settings"]["p_synthetic"]}]
    note = DATA_NOTE + (HEAD_NOTE if heads is not None else "")
    facts = train(args.out, cases, settings, data_note=note, init=init, earlier=earlier,
                  heads=heads, version=args.version,
                  log=lambda e: (print(e, flush=True), log and log(e)))
    print({k: v for k, v in facts.items() if k != "settings"})


if __name__ == "__main__":
    main()
