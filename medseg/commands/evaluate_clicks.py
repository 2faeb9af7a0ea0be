"""``medseg evaluate-clicks -m MODEL IMAGES... --ref REFS... -o DIR``: a simulated user clicks on
every class of every reference with a promptable model; Dice after 1/3/5/10 clicks, NoC@85/90
and seconds per click (:mod:`medseg.evaluation.interactive`).

A command of its own rather than a mode of ``medseg evaluate``: that one scores finished
predictions against references (``--pred DIR``), this one runs a model, so the two share
neither inputs nor outputs. A thin wrapper over
:func:`medseg.evaluation.interactive_run.evaluate_interactive`.
"""

from __future__ import annotations

import math
from pathlib import Path

from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.errors import InputError, MedsegError
from medseg.evaluation.classes import parse_class_tokens
from medseg.evaluation.interactive import DICE_AT, FIRST_CLICKS, ClickProtocol, noc_name
from medseg.evaluation.interactive_run import (
    InteractiveResult,
    evaluate_interactive,
    pair_inputs,
    write_interactive,
)
from medseg.evaluation.intervals import DEFAULT_MIN_N, StatsOptions
from medseg.models import load_model
from medseg.ops.device import resolve_device
from medseg.registry import load_registry


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate-clicks",
        help="simulate clicks with a promptable model: Dice after 1/3/5/10 clicks, NoC@85/90",
        description="The first click goes to the centre of each object of the reference, "
                    "each next one to the centre of the largest error (positive in a missed "
                    "part, negative in a false one). Writes clicks.csv, cases.csv, summary.csv "
                    "and summary.json into -o. NoC of an object never reaching the target "
                    "counts as --clicks (capped, as RITM and SAM-Med3D count) and is counted "
                    "in nof.")
    p.add_argument("images", nargs="+", help="images (files, folders or patterns)")
    p.add_argument("--ref", required=True, nargs="+", metavar="REF",
                   help="reference label maps: one file per image in the same order, or "
                        "folders paired by case name (case_0000.nii.gz with case.nii.gz)")
    p.add_argument("-m", "--model", required=True,
                   help="a promptable model: folder or a name from `medseg models`")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--labels", nargs="+", default=None, metavar="CLASS",
                   help="classes to click on: values (1 2), names (liver=1), or unions "
                        "(brain=1,2,3). Default: every non-zero value of each reference")
    add_protocol_options(p)
    p.add_argument("--min-n", type=int, default=DEFAULT_MIN_N, metavar="N",
                   help=f"fewest objects for a CI of a mean (default {DEFAULT_MIN_N})")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_protocol_options(p) -> None:
    """The options that set the :class:`ClickProtocol` (this command and
    ``bench/bench_interactive.py``)."""
    p.add_argument("--clicks", type=int, default=10, metavar="N",
                   help="clicks per object (default 10)")
    p.add_argument("--pick-answer", action="store_true",
                   help="where the model offers several answers to a click, the simulated user "
                        "keeps the one closest to the reference after the first click (another "
                        "protocol: report it apart)")
    p.add_argument("--first-click", choices=tuple(FIRST_CLICKS), default="centre",
                   help="centre: the object's deepest voxel (default); random: a voxel of the "
                        "object drawn uniformly, as SAM-Med3D's evaluation draws it (harder)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random first clicks (default 0)")


def protocol_from_args(args) -> ClickProtocol:
    """The protocol :func:`add_protocol_options` set (Dice@k at the ks the budget reaches)."""
    return ClickProtocol(clicks=args.clicks,
                         dice_at=tuple(k for k in DICE_AT if k <= args.clicks),
                         pick_answer=args.pick_answer, first=args.first_click, seed=args.seed)


def summary_lines(result: InteractiveResult) -> list[str]:
    """One line per class: n, Dice@k, NoC (failures), seconds per click."""
    lines = []
    for name, item in result.summary.items():
        m = item["metrics"]
        dice = " ".join(f"{k.replace('dice', 'Dice')} {m[k]['mean']:.3f}" for k in m
                        if k.startswith("dice@"))
        noc = " ".join(f"{k.replace('noc', 'NoC')} {m[k]['mean']:.2f} "
                       f"({item['nof' + k[3:]]} not reached)" for k in m if k.startswith("noc@"))
        sec = m["s_per_click"]["mean"]
        lines.append(f"  {name:<16} n={item['n']} {dice} {noc} "
                     f"{'' if math.isnan(sec) else f'{sec:.3f} s/click'}")
    return lines


def run(args) -> int:
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(out, "already exists and is not a folder")
    if args.min_n < 2:
        raise MedsegError("--min-n must be at least 2 (a CI needs two cases)")
    protocol = protocol_from_args(args)
    classes = parse_class_tokens(args.labels)
    pairs = pair_inputs(args.images, args.ref)
    registry = load_registry(args.plugins_dir, fresh=True)
    device = resolve_device(args.device)
    model = load_model(args.model, registry, device)
    segmenter = Segmenter(model, InferenceSettings(device=str(device)), registry)
    result = evaluate_interactive(segmenter, pairs, protocol, classes,
                                  stats=StatsOptions(min_n=args.min_n),
                                  progress=False if args.quiet else None)
    write_interactive(result, out)
    print(f"{len(result.traces)} object(s) in {len(pairs)} case(s), up to {protocol.clicks} "
          f"clicks each ({noc_name(0.85)}: clicks to Dice >= 0.85); results in {out}")
    for line in summary_lines(result):
        print(line)
    return 0
