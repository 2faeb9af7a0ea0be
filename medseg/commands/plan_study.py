"""``medseg plan-study``: the number of cases a study needs, as a paragraph for the protocol.

A thin wrapper over :func:`medseg.evaluation.study.plan.plan`. The SD comes from ``--sd``
or from pilot per-case values (``--pilot per_case.csv --class C --metric M``; with
``--pilot-b`` a second model's ``per_case.csv`` on the same cases, the paired differences
B - A). Prints the paragraph (and writes it, with the figures as JSON, to ``-o``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from medseg.errors import InputError, MedsegError
from medseg.evaluation.intervals import StatsOptions
from medseg.evaluation.metrics import METRIC_INFO
from medseg.evaluation.study.plan import PlanGoal, describe_plan, plan, protocol_paragraph
from medseg.io.atomic import write_text_atomic

MAX_BYTES = 200_000_000


def register(sub) -> None:
    p = sub.add_parser(
        "plan-study", help="sample size for a non-inferiority margin or a ci_low target",
        description="How many cases a study needs so that its confidence bound clears a "
                    "threshold with the given power: closed form, exact t power and (with "
                    "pilot values) a simulation with the study's own interval.",
    )
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--margin", type=float, metavar="M",
                      help="non-inferiority margin of B - A (metric units)")
    goal.add_argument("--ci-low-target", type=float, metavar="T",
                      help="the lower CI bound of the mean must exceed T (a ci_low criterion)")
    p.add_argument("--assume", type=float, default=None, metavar="V",
                   help="assumed true mean difference (default 0) or mean (default: the "
                        "pilot mean; required with --sd for --ci-low-target)")
    p.add_argument("--sd", type=float, default=None, metavar="S",
                   help="SD of the per-case values (or differences), instead of a pilot")
    p.add_argument("--pilot", metavar="CSV", help="a pilot per_case.csv (model A)")
    p.add_argument("--pilot-b", metavar="CSV", help="model B's per_case.csv on the same cases")
    p.add_argument("--class", dest="class_name", metavar="CLASS", help="class of the pilot rows")
    p.add_argument("--metric", default="dice", metavar="METRIC", help="metric (default dice)")
    p.add_argument("--lower-is-better", action="store_true",
                   help="the metric is lower-is-better (default: from the metric's direction)")
    p.add_argument("--power", type=float, default=0.8, metavar="P", help="power (default 0.8)")
    p.add_argument("--simulations", type=int, default=400, metavar="R",
                   help="simulated cohorts per candidate n (default 400)")
    p.add_argument("--ci-method", choices=("bca", "percentile", "t"), default="bca")
    p.add_argument("--ci-level", type=float, default=0.95, metavar="L")
    p.add_argument("--one-sided", action="store_true")
    p.add_argument("--min-n", type=int, default=10, metavar="N")
    p.add_argument("--resamples", type=int, default=1000, metavar="B",
                   help="bootstrap resamples per simulated interval (default 1000)")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the paragraph here (and the figures to FILE.json)")
    p.set_defaults(func=run)


def pilot_values(path: str, class_name: str | None, metric: str) -> dict[str, float]:
    """``{case: value}`` of one class and metric from a per_case.csv (finite, scored)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(file, "pilot file not found")
    if file.stat().st_size > MAX_BYTES:
        raise InputError(file, f"pilot file is larger than {MAX_BYTES} bytes")
    reader = csv.DictReader(io.StringIO(file.read_text(encoding="utf-8-sig", errors="replace")))
    columns = reader.fieldnames or []
    for needed in ("case", "class", metric):
        if needed not in columns:
            raise InputError(file, f"no {needed!r} column (a per_case.csv is expected)")
    out: dict[str, float] = {}
    for row in reader:
        if row.get("status") == "error" or (class_name and row["class"] != class_name):
            continue
        if not class_name and row["class"] == "all":
            continue
        try:
            value = float(row[metric])
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            out[row["case"] if class_name else f"{row['case']}/{row['class']}"] = value
    if not out:
        raise InputError(file, f"no finite {metric} value"
                               + (f" for class {class_name!r}" if class_name else ""))
    return out


def run(args) -> int:
    # the evaluation wing pulls in scipy: deferred so that `medseg --help` stays quick

    if args.sd is None and not args.pilot:
        raise MedsegError("give --sd or --pilot per_case.csv")
    if args.pilot_b and args.margin is None:
        raise MedsegError("--pilot-b (paired differences) goes with --margin")
    if not 0.5 <= args.power < 1:
        raise MedsegError("--power must lie in [0.5, 1)")
    higher = not args.lower_is_better and METRIC_INFO.get(args.metric, ("", True, ""))[1]
    values, source = None, ""
    if args.pilot:
        a = pilot_values(args.pilot, args.class_name, args.metric)
        if args.pilot_b:
            b = pilot_values(args.pilot_b, args.class_name, args.metric)
            common = sorted(set(a) & set(b))
            if len(common) < 3:
                raise MedsegError("the two pilot files share fewer than 3 scored cases")
            values = [b[c] - a[c] for c in common]
            source = f"paired differences of {args.pilot_b} - {args.pilot}"
        else:
            values = list(a.values())
            source = args.pilot
    if args.margin is not None:
        truth = 0.0 if args.assume is None else args.assume
        goal = PlanGoal("non_inferiority", args.margin, truth, higher)
    else:
        if args.assume is None and values is None:
            raise MedsegError("--ci-low-target with --sd needs --assume (the expected mean)")
        truth = args.assume if args.assume is not None else sum(values) / len(values)
        goal = PlanGoal("ci_low", args.ci_low_target, truth, higher)
    try:
        options = StatsOptions(min_n=args.min_n, ci_method=args.ci_method,
                               ci_level=args.ci_level, one_sided=args.one_sided,
                               resamples=max(200, args.resamples), seed=args.seed)
        result = plan(goal, sd=args.sd, pilot=values, power=args.power, options=options,
                      simulations=args.simulations, resamples=max(200, args.resamples),
                      seed=args.seed)
    except ValueError as exc:
        raise MedsegError(f"plan-study: {exc}") from None
    text = protocol_paragraph(result, metric=args.metric, source=source)
    print(text)
    if args.output:
        write_text_atomic(args.output, text + "\n")
        write_text_atomic(f"{args.output}.json",
                          json.dumps(describe_plan(result), indent=2) + "\n")
    return 0
