"""Several human readers: inter-reader spread, model versus each reader and a STAPLE consensus.

With reference folders R1..Rk (k >= 2) holding the same case names:

* **inter-reader**: every pair of readers scored against each other (Ri as "prediction",
  Rj as reference; Dice is symmetric, HD95 as defined is symmetric too), per case and class;
* **model vs each reader**;
* **consensus**: per case and class, SimpleITK's binary ``STAPLEImageFilter`` (Warfield et
  al., IEEE TMI 2004) over the readers' masks gives a probability per voxel; a voxel takes
  the class with the highest probability when that is >= 0.5, else background. The main
  report (per-case table, summary, criteria) is scored against this consensus.
* **within the readers' spread**: per case and class, the model's mean Dice against the
  readers minus the readers' mean Dice against each other (over all reader pairs); its mean
  and CI (:func:`medseg.evaluation.intervals.mean_ci`; none below the minimum n).
  The model is *within* the inter-reader disagreement for that class
  when the mean difference is >= 0 (it agrees with the readers at least as well as they
  agree with each other); likewise for HD95 (model's mean HD95 <= readers'). When the CI
  of the difference covers 0 the verdict says "indistinguishable from the readers'
  disagreement" and gives the point estimate's side.

Readers must be on one grid per case (the first reader's); with ``resample`` the others and
the prediction are mapped onto it by nearest neighbour.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import GeometryError, MedsegError
from medseg.evaluation.intervals import StatsOptions, mean_ci
from medseg.evaluation.options import EvaluationOptions
from medseg.evaluation.pairs import normalize_labels, pair_cases, resample_nearest
from medseg.evaluation.report import describe
from medseg.evaluation.report.folder import check_target, relocate, report_folder
from medseg.evaluation.run import evaluate_folders
from medseg.evaluation.scoring import score_folders
from medseg.io import read_label_map, write_image
from medseg.volume import LabelMap

#: metrics shown for readers
READER_METRICS = ("dice", "hd95")
#: consensus methods
CONSENSUS = {
    "staple": "STAPLE (SimpleITK STAPLEImageFilter per class, p >= 0.5)",
    "majority": "majority vote (a class where more than half of the readers gave it)",
}


def staple_consensus(readers: Sequence[LabelMap], labels: Sequence[int]) -> LabelMap:
    """STAPLE consensus label map of several readers' label maps on one grid."""
    return staple_with_performance(readers, labels)[0]


def majority_consensus(readers: Sequence[LabelMap], labels: Sequence[int]) -> LabelMap:
    """Majority-vote consensus: a voxel takes the class more than half of the readers gave it
    (else background); with two readers that is their intersection."""
    _check_readers(readers)
    first = readers[0]
    out = np.zeros(first.data.shape, dtype=first.data.dtype)
    for value in labels:
        votes = sum((r.data == value).astype(np.int32) for r in readers)
        out[2 * votes > len(readers)] = value
    return LabelMap(out[None], first.affine)


def _check_readers(readers: Sequence[LabelMap]) -> None:
    if len(readers) < 2:
        raise MedsegError("a consensus needs at least two readers")
    for other in readers[1:]:
        if not readers[0].same_grid(other):
            raise GeometryError("readers' label maps are on different grids")


def staple_with_performance(
    readers: Sequence[LabelMap], labels: Sequence[int]
) -> tuple[LabelMap, dict[int, dict[str, list[float]]]]:
    """STAPLE consensus and, per class present, each reader's estimated sensitivity and
    specificity (SimpleITK's ``GetSensitivity`` / ``GetSpecificity``; 1 and 1 for unanimous
    readers, which is STAPLE's fixed point)."""
    import SimpleITK as sitk  # heavy optional dependency, deferred

    if len(readers) < 2:
        raise MedsegError("STAPLE needs at least two readers")
    first = readers[0]
    for other in readers[1:]:
        if not first.same_grid(other):
            raise GeometryError("readers' label maps are on different grids")
    shape = first.data.shape
    best = np.zeros(shape, dtype=np.float64)
    out = np.zeros(shape, dtype=first.data.dtype)
    performance: dict[int, dict[str, list[float]]] = {}
    for value in labels:
        masks = [(r.data == value).astype(np.uint8) for r in readers]
        if not any(m.any() for m in masks):
            continue
        if all(np.array_equal(masks[0], m) for m in masks[1:]):
            prob = masks[0].astype(np.float64)  # unanimous: STAPLE's answer, without iterating
            sens = spec = [1.0] * len(readers)
        else:
            flt = sitk.STAPLEImageFilter()
            flt.SetForegroundValue(1)
            prob = sitk.GetArrayFromImage(flt.Execute([sitk.GetImageFromArray(m)
                                                       for m in masks]))
            sens = [float(v) for v in flt.GetSensitivity()]
            spec = [float(v) for v in flt.GetSpecificity()]
        performance[int(value)] = {"sensitivity": list(sens), "specificity": list(spec)}
        take = (prob >= 0.5) & (prob > best)
        out[take] = value
        best = np.maximum(best, prob)
    return LabelMap(out[None], first.affine), performance


def _class_values(rows: Sequence[Mapping[str, Any]], name: str, metric: str) -> dict[str, float]:
    return {r["case"]: float(r.get(metric, math.nan)) for r in rows
            if r["class"] == name and r.get("status") != "error"}


def _mean_over(tables: Sequence[Mapping[str, float]], cases: Sequence[str]) -> np.ndarray:
    """Per case the mean of the finite values of several tables (NaN when none is finite)."""
    out = []
    for case in cases:
        vals = [t.get(case, math.nan) for t in tables]
        finite = [v for v in vals if math.isfinite(v)]
        out.append(float(np.mean(finite)) if finite else math.nan)
    return np.asarray(out)


def readers_section(
    model_vs_reader: Mapping[str, Sequence[Mapping[str, Any]]],
    between_readers: Mapping[str, Sequence[Mapping[str, Any]]],
    model_vs_consensus: Sequence[Mapping[str, Any]],
    stats: StatsOptions | None = None,
) -> dict[str, Any]:
    """The report section from scored rows (keys are reader names and ``"R1 vs R2"`` pairs)."""
    classes = list(dict.fromkeys(r["class"] for r in model_vs_consensus
                                 if r.get("label") is not None))
    cases = sorted({r["case"] for r in model_vs_consensus})
    out: dict[str, Any] = {"readers": list(model_vs_reader), "pairs": list(between_readers),
                           "classes": {}}
    for name in classes:
        item: dict[str, Any] = {}
        for metric in READER_METRICS:
            model_t = [_class_values(rows, name, metric) for rows in model_vs_reader.values()]
            inter_t = [_class_values(rows, name, metric) for rows in between_readers.values()]
            cons_t = _class_values(model_vs_consensus, name, metric)
            m = _mean_over(model_t, cases)
            i = _mean_over(inter_t, cases)
            diff = m - i
            d = diff[np.isfinite(diff)]
            ci = mean_ci(d, stats)
            lo, hi = ci["ci_low"], ci["ci_high"]
            mean_diff = float(d.mean()) if d.size else math.nan
            higher = metric == "dice"
            within = None if not d.size else bool(mean_diff >= 0 if higher else mean_diff <= 0)
            item[metric] = {
                "inter_reader": {pair: describe(list(t.values()), stats)
                                 for pair, t in zip(between_readers, inter_t, strict=True)},
                "inter_reader_mean": describe(i, stats),
                "model_vs_reader": {rd: describe(list(t.values()), stats)
                                    for rd, t in zip(model_vs_reader, model_t, strict=True)},
                "model_vs_readers_mean": describe(m, stats),
                "model_vs_consensus": describe(list(cons_t.values()), stats),
                "difference": {"n": int(d.size), "mean": mean_diff, "ci_low": lo,
                               "ci_high": hi, "ci_note": ci["ci_note"]},
                "within": within,
                "verdict": _verdict(within, lo, hi, metric),
            }
        out["classes"][name] = item
    return out


def _verdict(within: bool | None, lo: float | None, hi: float | None, metric: str) -> str:
    if within is None:
        return f"{metric}: not assessable (no case with finite values)"
    side = "within" if within else "outside"
    if lo is None or hi is None:
        return f"{metric}: not decidable (too few cases for a CI; point estimate {side})"
    if math.isfinite(lo) and lo <= 0 <= hi and lo != hi:
        return (f"{metric}: indistinguishable from the readers' disagreement (CI of the "
                f"difference covers 0; point estimate {side})")
    return f"{metric}: {side} the readers' disagreement"


def evaluate_readers(
    pred_dir: str | Path,
    ref_dirs: Sequence[str | Path],
    out_dir: str | Path,
    options: EvaluationOptions | None = None,
    *,
    reader_names: Sequence[str] | None = None,
    study: Any = None,
    pdf: bool = False,
    consensus: str = "staple",
) -> Any:
    """Model against several readers; the main report is scored against their consensus.

    Writes the consensus label maps to ``out_dir/consensus/`` and the usual report (see
    :func:`medseg.evaluation.run.evaluate_folders`, with ``options``) with a
    ``readers`` section.
    """

    if len(ref_dirs) < 2:
        raise MedsegError("several readers need at least two --ref folders")
    if consensus not in CONSENSUS:
        raise MedsegError(f"consensus {consensus!r} is not one of {', '.join(CONSENSUS)}")
    check_target(out_dir)
    opts = options or EvaluationOptions()
    names = list(reader_names or [f"R{i + 1}" for i in range(len(ref_dirs))])
    label_names = normalize_labels(opts.labels)
    opts = opts.replace(labels=label_names)
    reader_files = [{c: r for c, _, r in pair_cases(pred_dir, ref).pairs} for ref in ref_dirs]
    cases = set.intersection(*(set(files) for files in reader_files))
    if not cases:
        raise MedsegError("no case is present in the prediction folder and every reader folder")
    resample = opts.resample
    with report_folder(out_dir) as build:
        consensus_dir = build / "consensus"
        consensus_dir.mkdir()
        values = sorted(label_names) if label_names else None
        performance: dict[int, dict[str, dict[str, list[float]]]] = {}

        for case in sorted(cases):
            maps = [read_label_map(files[case]) for files in reader_files]
            maps = [maps[0]] + [m if m.same_grid(maps[0]) or not resample
                                else resample_nearest(m, maps[0]) for m in maps[1:]]
            present = values or sorted({int(v) for m in maps
                                        for v in np.unique(m.data) if v > 0})
            if consensus == "majority":
                agreed = majority_consensus(maps, present)
            else:
                agreed, perf = staple_with_performance(maps, present)
                for value, est in perf.items():
                    for key, series in est.items():
                        for reader, v in zip(names, series, strict=True):
                            performance.setdefault(value, {}).setdefault(reader, {}) \
                                .setdefault(key, []).append(v)
            write_image(agreed, consensus_dir / f"{case}.nii.gz")
        chosen = sorted(cases)
        vs_reader = {
            name: score_folders(pred_dir, ref, opts, cases=chosen).rows
            for name, ref in zip(names, ref_dirs, strict=True)
        }
        between = {
            f"{names[i]} vs {names[j]}": score_folders(ref_dirs[i], ref_dirs[j], opts,
                                                       cases=chosen).rows
            for i, j in itertools.combinations(range(len(ref_dirs)), 2)
        }
        consensus_rows = score_folders(pred_dir, consensus_dir, opts,
                                       cases=chosen).rows
        section = readers_section(vs_reader, between, consensus_rows, opts.stats)
        section["consensus"] = CONSENSUS[consensus]
        class_names = {int(r["label"]): r["class"] for r in consensus_rows
                       if r.get("label") is not None}
        section["reader_performance"] = {
            class_names.get(value, str(value)): {
                reader: {key: describe(series, opts.stats) for key, series in est.items()}
                for reader, est in by_reader.items()}
            for value, by_reader in sorted(performance.items())}
        section["reader_folders"] = {n: str(r) for n, r in zip(names, ref_dirs, strict=True)}
        result = evaluate_folders(pred_dir, consensus_dir, build, opts, study=study, pdf=pdf,
                                  sections={"readers": section}, atomic=False,
                                  ref_label=str(Path(out_dir) / "consensus"))
    result.files = relocate(result.files, build, Path(out_dir))
    return result
