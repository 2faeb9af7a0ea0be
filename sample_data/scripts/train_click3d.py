"""Train the shipped click3d model (sample_data/models/click3d) on this machine's CPU.

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
import time
from dataclasses import replace
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "click3d")
    ap.add_argument("--seconds", type=float, default=2400.0)
    ap.add_argument("--iterations", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-real", action="store_true", help="synthetic crops only")
    ap.add_argument("--log", type=Path, default=None)
    args = ap.parse_args()
    assert not any(c in HELD_OUT for t in ABDOMEN for c in t.classes)
    t0 = time.monotonic()
    cases = [] if args.no_real else (
        load_cases(ROOT / "Dataset001_BrainTissue", BRAIN)
        + load_cases(ROOT / "Dataset002_AbdomenCT", ABDOMEN))
    print(f"{len(cases)} training cases loaded in {time.monotonic() - t0:.0f} s", flush=True)
    settings = replace(TrainSettings(), seconds=args.seconds, max_iterations=args.iterations,
                       batch=args.batch, threads=args.threads, seed=args.seed)
    log = json_logger(args.log) if args.log else None
    facts = train(args.out, cases, settings, data_note=DATA_NOTE,
                  log=lambda e: (print(e, flush=True), log and log(e)))
    print({k: v for k, v in facts.items() if k != "settings"})


if __name__ == "__main__":
    main()
