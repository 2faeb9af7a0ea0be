"""``medseg compare --ref REF --pred A --pred B [...] -o OUT``: paired comparison of models.

A thin wrapper over :func:`medseg.evaluation.study.compare.compare_folders`: every model is
evaluated
(its report in ``OUT/<name>/``), then each later model is compared with the first.
Exit status 0, or 1 when some case failed or some file had no partner in any model.
"""

from __future__ import annotations

import math
import sys

from medseg.commands.evaluate import (
    add_scoring_args,
    scoring_options,
    stats_options,
    sweep_interrupted_reports,
)
from medseg.errors import MedsegError
from medseg.evaluation.lesions import LESION_METRICS
from medseg.evaluation.metrics import CLASS_METRICS
from medseg.evaluation.report.settings import tolerance_text
from medseg.evaluation.study.compare import COMPARE_METRICS, compare_folders
from medseg.evaluation.study.compare_criteria import load_comparison_criteria
from medseg.evaluation.study.subgroups import read_metadata


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare models on the same cases (paired CI, Wilcoxon, win/tie/loss)",
        description="Scores each --pred folder against --ref and compares every model with "
                    "the first: comparison.csv, comparison.json, comparison.html.",
    )
    p.add_argument("--ref", required=True, metavar="DIR", help="folder of reference label maps")
    p.add_argument("--pred", required=True, action="append", metavar="DIR",
                   help="folder of one model's predictions (twice or more; the first is A)")
    p.add_argument("--name", action="append", default=None, metavar="NAME",
                   help="model names, one per --pred (default: folder names)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    p.add_argument("--margin", nargs="+", default=None, metavar="M",
                   help="non-inferiority margin: a number for unitless metrics (0.02 Dice), "
                        "or per metric (hd95=1)")
    p.add_argument("--metrics", nargs="+", default=None, metavar="METRIC",
                   help="metrics to compare (default dice iou hd95 assd nsd "
                        "abs_volume_diff_ml)")
    p.add_argument("--criteria", metavar="FILE",
                   help="pre-registered criteria on the comparison (JSON or YAML): "
                        "non_inferior, mean_diff, ci_low, ci_high, ... per class and metric")
    p.add_argument("--fail-on-criteria", action="store_true",
                   help="exit with status 3 when a criterion fails or is not evaluable")
    p.add_argument("--metadata", metavar="CSV",
                   help="case metadata (a 'case' column); with --cluster")
    p.add_argument("--cluster", metavar="COLUMN",
                   help="metadata column naming the patient: bootstrap whole patients")
    add_scoring_args(p)
    p.set_defaults(func=run)


def parse_margin(tokens: list[str] | None) -> float | dict[str, float] | None:
    """``["0.02"]`` -> 0.02; ``["0.02", "hd95=1"]`` -> ``{"default": 0.02, "hd95": 1.0}``."""
    if not tokens:
        return None
    out: dict[str, float] = {}
    for token in tokens:
        key, sep, value = token.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            raise MedsegError(f"--margin: {token!r} is not M or metric=M") from None
        if not math.isfinite(number) or number < 0:
            raise MedsegError(f"--margin: {token!r} must be a non-negative number")
        out[key if sep else "default"] = number
    return out["default"] if list(out) == ["default"] else out


def run(args) -> int:

    if len(args.pred) < 2:
        raise MedsegError("compare needs at least two --pred folders")
    if args.name and len(args.name) != len(args.pred):
        raise MedsegError(f"--name given {len(args.name)} times for {len(args.pred)} --pred")
    metrics = tuple(args.metrics or COMPARE_METRICS)
    known = (*CLASS_METRICS, *LESION_METRICS)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise MedsegError(f"--metrics: unknown {', '.join(unknown)} "
                          f"(known: {', '.join(known)})")
    margin = parse_margin(args.margin)
    sweep_interrupted_reports(args.output)
    if isinstance(margin, dict):
        bad = [k for k in margin if k != "default" and k not in metrics]
        if bad:
            raise MedsegError(f"--margin names metrics not compared: {', '.join(bad)}")
    options = scoring_options(args)
    if args.cluster:
        if not args.metadata:
            raise MedsegError("--cluster needs --metadata CSV")

        table = read_metadata(args.metadata, [args.cluster])
        clusters = {case: row.get(args.cluster, "") or case for case, row in table.items()}
        options = options.replace(stats=stats_options(args, clusters, args.cluster))
    criteria = ()
    if args.criteria:

        classes = list(options.labels.values()) if options.labels else None
        criteria = load_comparison_criteria(args.criteria, classes, metrics)
    elif args.fail_on_criteria:
        raise MedsegError("--fail-on-criteria needs --criteria FILE")
    result = compare_folders(args.ref, args.pred, args.output, options,
                             metrics=metrics, margin=margin,
                             names=args.name, pdf=args.pdf, criteria=criteria)
    failed = False
    for name, res in result.models.items():
        for case, message in res.errors.items():
            print(f"medseg: error: {name}: case {case}: {message}", file=sys.stderr)
        unpaired = res.pairing.pred_only + res.pairing.ref_only
        for path in unpaired:
            print(f"medseg: warning: {name}: unpaired {path}", file=sys.stderr)
        failed = failed or bool(res.errors or unpaired)
    for c in result.rows:
        if c["metric"] != metrics[0]:
            continue
        if c["margin"] is None:
            ni = ""
        elif c["non_inferior"] is None:
            ni = f", non-inferior: {c['non_inferior_note']}"
        else:
            flag = " (within MC error: rerun with more --resamples)" \
                if c["non_inferior_mc_flag"] else ""
            ni = f", non-inferior: {'yes' if c['non_inferior'] else 'no'}{flag}"
        level = f"{100 * args.ci_level:g}% CI"
        ci = (f"{level}: {c['ci_note']}" if c["ci_low"] is None
              else f"{level} {c['ci_low']:+.4f} to {c['ci_high']:+.4f}")
        print(f"  {c['model_b']} - {c['model_a']} {c['class']:<12} {c['metric']} "
              f"{c['mean_diff']:+.4f} ({ci}, n={c['n_pairs']}, excluded {c['n_excluded']}, "
              f"worst-case {c['n_imputed']}; Wilcoxon p={c['p_wilcoxon']:.3g}, "
              f"n={c['n_wilcoxon']}; W/T/L {c['wins']}/{c['ties']}/{c['losses']}{ni})")
    crit = result.criteria
    if crit:
        for c in crit["criteria"]:
            value = "-" if c["value"] is None else f"{c['value']:.4g}" \
                if not isinstance(c["value"], bool) else str(c["value"])
            note = f"; {c['note']}" if c["note"] else ""
            print(f"  {c['result']} {c['id']}: {c['text']} (value {value}, n={c['n_pairs']}, "
                  f"excluded {c['n_excluded']}, worst-case {c['n_imputed']}{note})")
        print(f"criteria: {crit['verdict']}")
    for name, res in result.models.items():
        print(f"  {name}: NSD tolerance: {tolerance_text(res.settings)}")
    print(f"comparison in {args.output}")
    if args.fail_on_criteria and crit and not crit["passed"]:
        return 3
    return 1 if failed else 0
