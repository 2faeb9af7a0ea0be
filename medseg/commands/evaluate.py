"""``medseg evaluate --pred DIR --ref DIR -o REPORT_DIR``: score a cohort, write a report.

A thin wrapper over :func:`medseg.evaluation.run.evaluate_folders` (and
:func:`medseg.evaluation.study.readers.evaluate_readers` for several ``--ref``). Exit status 0
when every
file was paired and scored, 1 when the report was written but some case failed or some file
had no partner (both are listed in the output and in the report), 3 with
``--fail-on-criteria`` when an acceptance criterion failed (this takes precedence).
"""

from __future__ import annotations

import math
import sys

from medseg.errors import MedsegError
from medseg.evaluation.classes import ClassGroups, parse_class_tokens
from medseg.evaluation.intervals import DEFAULT_MIN_N, StatsOptions
from medseg.evaluation.lesions import LesionRule
from medseg.evaluation.options import EvaluationOptions
from medseg.evaluation.pairs import normalize_labels
from medseg.evaluation.report.folder import sweep_interrupted
from medseg.evaluation.report.settings import tolerance_text
from medseg.evaluation.run import evaluate_folders
from medseg.evaluation.study.criteria import load_criteria
from medseg.evaluation.study.options import StudyOptions
from medseg.evaluation.study.readers import evaluate_readers
from medseg.evaluation.study.subgroups import dicom_metadata_table, read_metadata


def add_scoring_args(p) -> None:
    """Options shared by ``evaluate`` and ``compare``: labels, tolerance, empty score, ..."""
    p.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                   help="class values (1 2 3), names (liver=1 spleen=2), or classes merged "
                        "from several values in both maps (brain=1,2,3). Default: every "
                        "non-zero value found, named from the prediction's header or the "
                        "folders' dataset.json. With --labels, any other value in a map fails "
                        "that case.")
    p.add_argument("--tolerance", nargs="+", default=None, metavar="MM",
                   help="NSD tolerance in mm: one number, or per class (liver=2 3=1.5), "
                        "optionally with a bare default number (default: the voxel size, "
                        "the largest voxel spacing of each case; recorded in every output)")
    p.add_argument("--empty-score", type=float, default=None, metavar="S",
                   help="score Dice/IoU/NSD of a class absent from both maps as S (e.g. 1); "
                        "default: undefined (NaN, counted apart)")
    p.add_argument("--resample", action="store_true",
                   help="resample a prediction on another grid onto the reference grid "
                        "(nearest neighbour) instead of failing that case")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel processes (default min(2, CPUs))")
    p.add_argument("--pdf", action="store_true",
                   help="also print the HTML report to PDF (needs Chromium)")
    p.add_argument("--missing-distance", choices=("worst", "exclude"), default="worst",
                   help="HD95/HD/ASSD of a structure in one map only: worst = the image "
                        "diagonal in mm (default, Metrics Reloaded), exclude = NaN, left out")
    p.add_argument("--min-n", type=int, default=None, metavar="N",
                   help="fewest cases for a CI, a ci_low/ci_high criterion or a "
                        "non-inferiority verdict (default 10; also the subgroup minimum)")
    p.add_argument("--ci-method", choices=("bca", "percentile", "t"), default="bca",
                   help="interval of a mean: bca (default; BCa bootstrap with small-sample "
                        "expansion), percentile bootstrap, or t")
    p.add_argument("--ci-level", type=float, default=0.95, metavar="L",
                   help="confidence level (default 0.95)")
    p.add_argument("--one-sided", action="store_true",
                   help="each CI bound one-sided at --ci-level (default: two-sided)")
    p.add_argument("--resamples", type=int, default=10_000, metavar="B",
                   help="bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="bootstrap seed (default 0)")
    p.add_argument("--lesion-classes", nargs="+", default=None, metavar="CLASS",
                   help="classes given lesion-wise detection statistics (default: every "
                        "class whose reference has several components in some case; "
                        "'none' skips the component analysis)")
    p.add_argument("--lesion-match", choices=("iou", "dice", "centre"), default="iou",
                   help="how lesions are matched: overlap IoU or Dice above "
                        "--lesion-threshold (default iou), or centre distance")
    p.add_argument("--lesion-threshold", type=float, default=0.1, metavar="T",
                   help="overlap above which two components match (default 0.1)")
    p.add_argument("--lesion-distance", type=float, default=10.0, metavar="MM",
                   help="centre distance within which two components match (default 10)")


def stats_options(args, clusters=None, column: str = ""):
    """:class:`~medseg.evaluation.intervals.StatsOptions` from the command line."""

    min_n = DEFAULT_MIN_N if args.min_n is None else args.min_n
    if min_n < 2:
        raise MedsegError("--min-n must be at least 2 (a CI needs two cases)")
    if not 0.5 < args.ci_level < 1:
        raise MedsegError("--ci-level must lie between 0.5 and 1 (e.g. 0.95)")
    if args.resamples < 200:
        raise MedsegError("--resamples must be at least 200")
    return StatsOptions(min_n=min_n, ci_method=args.ci_method, ci_level=args.ci_level,
                        one_sided=args.one_sided, resamples=args.resamples, seed=args.seed,
                        clusters=clusters, cluster_column=column)


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="score predicted label maps against references (Dice, HD95, NSD, ...)",
        description="Pairs files by name (without .nii.gz/.nii/.nrrd/.mha) and writes "
                    "per_case.csv, summary.csv, summary.json, volume_agreement.csv and "
                    "report.html (criteria.json, subgroups.csv, report.pdf when asked).",
    )
    p.add_argument("--pred", required=True, metavar="DIR", help="folder of predicted label maps")
    p.add_argument("--ref", required=True, action="append", metavar="DIR",
                   help="folder of reference label maps; give it twice or more for several "
                        "readers (the report is then scored against their STAPLE consensus)")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR", help="report folder")
    add_scoring_args(p)
    p.add_argument("--images", metavar="DIR", default=None,
                   help="folder of the cases' images (case.nii.gz or case_0000.nii.gz, or a "
                        "DICOM subfolder per case): the report's gallery of worst cases is "
                        "drawn on them (default: masks alone)")
    p.add_argument("--criteria", metavar="FILE",
                   help="pre-registered acceptance criteria (JSON or YAML), judged PASS/FAIL")
    p.add_argument("--fail-on-criteria", action="store_true",
                   help="exit with status 3 when a criterion fails")
    p.add_argument("--metadata", metavar="CSV",
                   help="case metadata (a 'case' column and one column per attribute)")
    p.add_argument("--dicom-metadata", metavar="DIR",
                   help="folder with one DICOM series (subfolder or file) per case: its "
                        "Manufacturer, ManufacturerModelName, SliceThickness and PatientSex "
                        "become metadata (no patient identifiers are read)")
    p.add_argument("--by", action="append", default=[], metavar="COLUMN",
                   help="summarise per value of this metadata column (repeatable)")
    p.add_argument("--cluster", metavar="COLUMN", default=None,
                   help="metadata column naming the patient: bootstrap whole patients "
                        "(cluster bootstrap) instead of cases")
    p.add_argument("--consensus", choices=("staple", "majority"), default="staple",
                   help="consensus of several --ref readers (default staple)")
    p.set_defaults(func=run)


def parse_labels(tokens: list[str] | None) -> dict[int, str] | ClassGroups | None:
    """``["1", "2"]`` or ``["liver=1", "spleen=2"]`` -> ``{value: name}``; ``["brain=1,2,3"]``
    -> :class:`~medseg.evaluation.classes.ClassGroups` (see there)."""
    return parse_class_tokens(tokens)


def parse_tolerance(tokens: list[str] | None) -> float | dict[str, float] | None:
    """``["2"]`` -> 2.0; ``["liver=2", "1.5"]`` -> ``{"liver": 2.0, "default": 1.5}``;
    None or ``["liver=2"]`` alone: the other classes take the voxel size (no ``default``)."""
    per_class: dict[str, float] = {}
    default: float | None = None
    for token in tokens or ():
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
    return {**per_class, **({} if default is None else {"default": default})}


def study_options(args, labels: dict[int, str] | None):
    """Criteria and subgroups from the command line, validated before any scoring."""

    criteria = load_criteria(args.criteria, labels) if args.criteria else ()
    if args.fail_on_criteria and not criteria:
        raise MedsegError("--fail-on-criteria needs --criteria FILE")
    metadata = None
    sources = []
    subgroups = [c.subgroup.partition("=")[0].strip() for c in criteria if c.subgroup]
    if subgroups and not (args.metadata or args.dicom_metadata):
        raise MedsegError("a criterion names a subgroup: --metadata CSV is needed")
    if args.metadata:
        wanted = [*args.by, *([args.cluster] if args.cluster else []), *subgroups]
        metadata = read_metadata(args.metadata, () if args.dicom_metadata else wanted)
        sources.append(args.metadata)
    if args.dicom_metadata:
        tags = dicom_metadata_table(args.dicom_metadata)
        metadata = {case: {**(metadata or {}).get(case, {}), **t} for case, t in tags.items()}
        sources.append(f"DICOM tags of {args.dicom_metadata}")
        columns = set().union(*(m.keys() for m in metadata.values()))
        unknown = [b for b in args.by if b not in columns]
        if unknown:
            raise MedsegError(f"--by {', '.join(unknown)}: not a metadata column "
                              f"({', '.join(sorted(columns - {'case'}))})")
    if args.by and metadata is None:
        raise MedsegError("--by needs --metadata CSV or --dicom-metadata DIR")
    if args.cluster and metadata is None:
        raise MedsegError("--cluster needs --metadata CSV")
    if not criteria and not args.by and metadata is None:
        return None
    return StudyOptions(criteria=criteria, metadata=metadata, by=tuple(args.by),
                        metadata_source="; ".join(sources))


def scoring_options(args) -> EvaluationOptions:

    if not 0 <= args.lesion_threshold < 1 or args.lesion_distance <= 0:
        raise MedsegError("--lesion-threshold must lie in [0, 1) and --lesion-distance be > 0")
    off = args.lesion_classes == ["none"]
    return EvaluationOptions(
        lesion_rule=None if off else LesionRule(criterion=args.lesion_match,
                                                threshold=args.lesion_threshold,
                                                max_distance_mm=args.lesion_distance),
        lesion_classes=args.lesion_classes,
        missing_distance=args.missing_distance,
        stats=stats_options(args),
        labels=parse_labels(args.labels),
        tolerance=parse_tolerance(args.tolerance),
        empty_score=math.nan if args.empty_score is None else args.empty_score,
        resample=args.resample,
        workers=args.workers,
        plugins_dir=args.plugins_dir,
    )


def ci_text(stats, options) -> str:
    """``95% CI a-b`` or ``95% CI: n < 10`` for stdout."""
    level = f"{100 * options.ci_level:g}% CI"
    if stats.get("ci_low") is None or stats.get("ci_high") is None:
        return f"{level}: {stats.get('ci_note') or 'none'}"
    return f"{level} {stats['ci_low']:.4g}-{stats['ci_high']:.4g}"


def sweep_interrupted_reports(output: str) -> None:
    """Say so, and clear up, when an earlier run writing this report folder was killed."""

    for path in sweep_interrupted(output):
        print(f"medseg: warning: {output}: an earlier run was interrupted before its report "
              f"was complete; removed its unfinished folder {path}", file=sys.stderr)


def run(args) -> int:

    sweep_interrupted_reports(args.output)
    options = scoring_options(args).replace(images=args.images)
    study = study_options(args, normalize_labels(options.labels))
    lesion_criteria = [c.id for c in (study.criteria if study else ())
                       if c.metric == "detection" or c.metric.startswith("lesion_")]
    if lesion_criteria and options.lesion_rule is None:
        raise MedsegError(f"criteria {', '.join(lesion_criteria)} need the lesion analysis "
                          "(drop --lesion-classes none)")
    if args.cluster:

        table = read_metadata(args.metadata, [args.cluster])
        clusters = {case: row.get(args.cluster, "") or case for case, row in table.items()}
        options = options.replace(stats=stats_options(args, clusters, args.cluster))
    if len(args.ref) > 1:

        if isinstance(options.labels, ClassGroups):
            raise MedsegError("--labels merging values (NAME=1,2,3) is not supported with "
                              "several --ref readers; merge the masks beforehand")

        result = evaluate_readers(args.pred, args.ref, args.output, options, study=study,
                                  pdf=args.pdf, consensus=args.consensus)
    else:
        result = evaluate_folders(args.pred, args.ref[0], args.output, options, study=study,
                                  pdf=args.pdf)
    pairing = result.pairing
    errors = result.errors
    n_cases = len({r["case"] for r in result.rows})
    print(f"scored {n_cases - len(errors)} of {n_cases} cases; report in {args.output}")
    print(f"  NSD tolerance: {tolerance_text(result.settings)}")
    for name, item in result.summary.items():
        stats = item["metrics"].get("dice")
        if stats and stats["n"]:
            print(f"  {name:<16} Dice {stats['mean']:.4f} ({ci_text(stats, options.stats)}, "
                  f"n={stats['n']}, excluded {stats['n_excluded']})")
        hd = item["metrics"].get("hd95")
        if hd and hd["n"]:
            print(f"  {'':<16} HD95 {hd['mean']:.4g} mm ({ci_text(hd, options.stats)}, "
                  f"n={hd['n']}, excluded {hd['n_excluded']}, worst-case {hd['n_imputed']}; "
                  f"missing distance: {options.missing_distance})")
    readers = result.sections.get("readers")
    if readers:
        for name, item in readers["classes"].items():
            for metric in item.values():
                print(f"  {name:<16} {metric['verdict']}")
        for name, by_reader in (readers.get("reader_performance") or {}).items():
            for reader, est in by_reader.items():
                print(f"  {name:<16} {reader}: STAPLE sensitivity "
                      f"{est['sensitivity']['mean']:.4f}, specificity "
                      f"{est['specificity']['mean']:.4f} (mean of {est['sensitivity']['n']} "
                      "cases)")
    for name, d in (result.sections.get("detection") or {}).get("classes", {}).items():
        sens = "n/a" if d["sensitivity"] is None else f"{d['sensitivity']:.3f}"
        print(f"  {name:<16} lesions: sensitivity {sens} ({d['tp']}/{d['n_ref_lesions']}), "
              f"FP/case {d['fp_per_case']:.3g}, lesion-wise Dice {d['lesion_dice']:.4g}, "
              f"FROC score {d['froc_score']:.3g}")
    crit = result.sections.get("criteria")
    if crit:
        for c in crit["criteria"]:
            value = "n < min" if c["value"] is None else f"{c['value']:.4g}"
            note = f"; {c['note']}" if c["note"] else ""
            print(f"  {c['result']} {c['id']}: {c['text']} (value {value}, n={c['n']}, "
                  f"excluded {c['n_excluded']}, worst-case {c['n_imputed']}{note})")
        print(f"criteria: {crit.get('verdict', 'PASS' if crit['passed'] else 'FAIL')}")
    for path in pairing.pred_only:
        print(f"medseg: warning: unpaired prediction (no reference): {path}", file=sys.stderr)
    for path in pairing.ref_only:
        print(f"medseg: warning: unpaired reference (no prediction): {path}", file=sys.stderr)
    for row in result.rows:
        if row.get("class") == "all" and row.get("note"):
            print(f"medseg: warning: case {row['case']}: {row['note']}", file=sys.stderr)
    for case, message in errors.items():
        print(f"medseg: error: case {case}: {message}", file=sys.stderr)
    if args.fail_on_criteria and crit and not crit["passed"]:
        return 3
    return 1 if errors or pairing.pred_only or pairing.ref_only else 0
