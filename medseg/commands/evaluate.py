"""``medseg evaluate --pred DIR --ref DIR -o REPORT_DIR``: score a cohort, write a report.

A thin wrapper over :func:`medseg.evaluation.evaluate_folders`. Exit status 0 when every
file was paired and scored, 1 when the report was written but some case failed or some file
had no partner (both are listed in the output and in the report).
"""

from __future__ import annotations

import math
import sys

from medseg.errors import MedsegError


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="score predicted label maps against references (Dice, HD95, NSD, ...)",
        description="Pairs files by name (without .nii.gz/.nii/.nrrd/.mha) and writes "
                    "per_case.csv, summary.csv, summary.json and report.html.",
    )
    p.add_argument("--pred", required=True, metavar="DIR", help="folder of predicted label maps")
    p.add_argument("--ref", required=True, metavar="DIR", help="folder of reference label maps")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR", help="report folder")
    p.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                   help="class values (1 2 3) or names (liver=1 spleen=2); default: every "
                        "non-zero value found. Any other value in a map fails that case.")
    p.add_argument("--tolerance", nargs="+", default=["1"], metavar="MM",
                   help="NSD tolerance in mm: one number, or per class (liver=2 3=1.5), "
                        "optionally with a bare default number (default 1)")
    p.add_argument("--empty-score", type=float, default=None, metavar="S",
                   help="score Dice/IoU/NSD of a class absent from both maps as S (e.g. 1); "
                        "default: undefined (NaN, counted apart)")
    p.add_argument("--resample", action="store_true",
                   help="resample a prediction on another grid onto the reference grid "
                        "(nearest neighbour) instead of failing that case")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel processes (default min(2, CPUs))")
    p.set_defaults(func=run)


def parse_labels(tokens: list[str] | None) -> dict[int, str] | None:
    """``["1", "2"]`` or ``["liver=1", "spleen=2"]`` -> ``{value: name}``."""
    if tokens is None:
        return None
    out: dict[int, str] = {}
    for token in tokens:
        name, sep, value = token.rpartition("=")
        try:
            number = int(value)
        except ValueError:
            raise MedsegError(f"--labels: {token!r} is not a value or name=value") from None
        out[number] = name if sep and name else str(number)
    return out


def parse_tolerance(tokens: list[str]) -> float | dict[str, float]:
    """``["2"]`` -> 2.0; ``["liver=2", "1.5"]`` -> ``{"liver": 2.0, "default": 1.5}``."""
    per_class: dict[str, float] = {}
    default = 1.0
    for token in tokens:
        key, sep, value = token.rpartition("=")
        try:
            mm = float(value)
        except ValueError:
            raise MedsegError(f"--tolerance: {token!r} is not MM or class=MM") from None
        if not math.isfinite(mm) or mm < 0:
            raise MedsegError(f"--tolerance: {token!r} must be a non-negative number of mm")
        if sep:
            per_class[key] = mm
        else:
            default = mm
    if not per_class:
        return default
    return {**per_class, "default": default}


def run(args) -> int:
    from medseg.evaluation import evaluate_folders

    result = evaluate_folders(
        args.pred, args.ref, args.output,
        labels=parse_labels(args.labels),
        tolerance=parse_tolerance(args.tolerance),
        empty_score=math.nan if args.empty_score is None else args.empty_score,
        resample=args.resample,
        workers=args.workers,
        plugins_dir=args.plugins_dir,
    )
    pairing = result.pairing
    errors = result.errors
    n_cases = len({r["case"] for r in result.rows})
    print(f"scored {n_cases - len(errors)} of {n_cases} cases; report in {args.output}")
    for name, item in result.summary.items():
        stats = item["metrics"].get("dice")
        if stats and stats["n"]:
            print(f"  {name:<16} Dice {stats['mean']:.4f} "
                  f"(95% CI {stats['ci_low']:.4f}-{stats['ci_high']:.4f}, n={stats['n']}, "
                  f"NaN {stats['n_nan']})")
    for path in pairing.pred_only:
        print(f"medseg: warning: unpaired prediction (no reference): {path}", file=sys.stderr)
    for path in pairing.ref_only:
        print(f"medseg: warning: unpaired reference (no prediction): {path}", file=sys.stderr)
    for case, message in errors.items():
        print(f"medseg: error: case {case}: {message}", file=sys.stderr)
    return 1 if errors or pairing.pred_only or pairing.ref_only else 0
