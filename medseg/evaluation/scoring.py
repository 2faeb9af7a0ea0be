"""Scoring a prediction folder against a reference folder case by case (nothing written).

Cases are scored in a process pool; a case that cannot be scored keeps its ``error``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from medseg.errors import InputError, MedsegError, PluginError
from medseg.evaluation.classes import (
    ClassGroups,
    names_from_dataset_json,
    names_from_file,
    rename_rows,
)
from medseg.evaluation.lesions import LESION_METRICS, match_lesions
from medseg.evaluation.metrics import CLASS_METRICS, SEMANTIC_METRICS, class_metrics
from medseg.evaluation.options import EvaluationOptions
from medseg.evaluation.pairs import Pairing, evaluate_pair, normalize_labels, pair_cases
from medseg.io import read_label_map
from medseg.io.names import case_name
from medseg.registry import load_registry
from medseg.specs import MetricSpec


def _score_case(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: read one pair and score it; errors are returned, never raised."""
    try:
        registry = load_registry(job["plugins_dir"])
        pred = read_label_map(job["pred"], registry=registry)
        ref = read_label_map(job["ref"], registry=registry)
        rows = evaluate_pair(
            pred, ref, job["labels"], tolerance=job["tolerance"],
            empty_score=job["empty_score"], resample=job["resample"],
            extra_metrics=job["extra_metrics"], missing_distance=job["missing_distance"],
            lesion_rule=job["lesion_rule"],
        )
        if job["labels"] is None:  # no names given: the prediction's own, else dataset.json's
            rename_rows(rows, {**job["names"], **names_from_file(job["pred"])})
        return {"case": job["case"], "rows": rows, "error": ""}
    except MedsegError as exc:
        return {"case": job["case"], "rows": [], "error": str(exc)}
    except Exception as exc:  # a bug or a plugin metric failing: recorded for this case only
        return {"case": job["case"], "rows": [], "error": f"{type(exc).__name__}: {exc}"}


def _extra_metric_specs(metrics: Sequence[MetricSpec] | None, plugins_dir: Any) -> list:
    if metrics is None:
        table = load_registry(plugins_dir).metrics
        metrics = [table.specs[name] for name in table]
    reserved = (set(CLASS_METRICS) | set(SEMANTIC_METRICS) | set(LESION_METRICS)
                | {"case", "class", "label", "status"})
    for spec in metrics:
        if spec.name in reserved:
            raise PluginError(f"plugin metric {spec.name!r} clashes with a built-in metric name")
    return list(metrics)


def default_workers() -> int:
    """``min(2, CPU count)``: evaluation is memory-bound on large volumes."""
    return max(1, min(2, os.cpu_count() or 1))


@dataclass
class Scored:
    """Per-case rows of one prediction folder against one reference folder (nothing written)."""

    rows: list[dict[str, Any]]
    pairing: Pairing
    extras: list[MetricSpec]
    labels: dict[int, str] | None
    workers: int


def score_folders(
    pred_dir: str | os.PathLike[str],
    ref_dir: str | os.PathLike[str],
    options: EvaluationOptions | None = None,
    *,
    cases: Sequence[str] | None = None,
) -> Scored:
    """Score every paired case (or only ``cases``) of two folders; write nothing."""
    opts = options or EvaluationOptions()
    labels, tolerance, empty_score = opts.labels, opts.tolerance, opts.empty_score
    resample, workers, metrics = opts.resample, opts.workers, opts.metrics
    plugins_dir, progress = opts.plugins_dir, opts.progress
    label_names = normalize_labels(labels)
    pairing = pair_cases(pred_dir, ref_dir)
    images = None if opts.images is None else image_files(opts.images)
    if cases is not None:
        keep = set(cases)
        pairing.pairs = [p for p in pairing.pairs if p[0] in keep]
    extras = _extra_metric_specs(metrics, plugins_dir)
    workers = default_workers() if workers is None else max(1, int(workers))
    default_names = {} if label_names is not None else names_from_dataset_json(ref_dir,
                                                                                pred_dir)
    jobs = [
        {"case": case, "pred": str(p), "ref": str(r), "names": default_names,
         "labels": labels if isinstance(labels, ClassGroups) else label_names,
         "tolerance": tolerance, "empty_score": empty_score, "resample": resample,
         "extra_metrics": extras, "plugins_dir": plugins_dir,
         "missing_distance": opts.missing_distance, "lesion_rule": opts.lesion_rule}
        for case, p, r in pairing.pairs
    ]
    results: list[dict[str, Any]] = [
        {"case": case, "rows": [], "error": reason} for case, reason in pairing.ambiguous.items()
    ]
    bar = tqdm(total=len(jobs), desc="evaluate", unit="case",
               disable=None if progress is None else not progress)
    try:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                results.append(_score_case(job))
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
                futures = [pool.submit(_score_case, job) for job in jobs]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
    finally:
        bar.close()
    files = {case: (str(p), str(r)) for case, p, r in pairing.pairs}
    rows = _collect_rows(results, label_names, files, extras, empty_score,
                         lesions=opts.lesion_rule is not None)
    if images is not None:
        for row in rows:
            row["image_file"] = images.get(row["case"], "")
    return Scored(rows=rows, pairing=pairing, extras=extras, labels=label_names, workers=workers)


def image_files(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``{case: path}`` of the images in ``folder``: files named as medseg reads them
    (``case_0000.nii.gz`` is case ``case``) and subfolders (a DICOM series, named by case)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(root, "images folder not found")
    out: dict[str, str] = {}
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        case = case_name(path, bare=path.is_dir())
        if case is not None:
            out.setdefault(case, str(path))
    return out


def _collect_rows(
    results: list[dict[str, Any]],
    label_names: dict[int, str] | None,
    files: dict[str, tuple[str, str]],
    extras: list[MetricSpec],
    empty_score: float,
    lesions: bool = True,
) -> list[dict[str, Any]]:
    """Flatten per-case results; fill classes absent from a case (labels found per case)."""
    seen: dict[int, str] = dict(label_names or {})
    for res in results:
        for row in res["rows"]:
            if row.get("label") is not None:
                seen.setdefault(int(row["label"]), row["class"])
    classes = dict(sorted(seen.items()))
    rows: list[dict[str, Any]] = []
    for res in sorted(results, key=lambda r: r["case"]):
        pred_file, ref_file = files.get(res["case"], ("", ""))
        base = {"case": res["case"], "pred_file": pred_file, "ref_file": ref_file}
        if res["error"]:
            targets: list[tuple[int | None, str]] = list(classes.items()) or [(None, "")]
            for value, name in targets:
                rows.append({**base, "class": name, "label": value, "status": "error",
                             "error": res["error"]})
            continue
        by_label = {r["label"]: r for r in res["rows"]}
        for value, name in classes.items():
            row = by_label.get(value)
            if row is None:  # class in neither map of this case: the both-empty policy
                row = _both_empty_row(value, name, empty_score, extras, lesions)
            rows.append({**base, **row, "error": ""})
        rows.append({**base, **by_label[None], "error": ""})
    return rows


def _both_empty_row(value: int, name: str, empty_score: float,
                    extras: list[MetricSpec], lesions: bool = True) -> dict[str, Any]:
    """The row of a class found in neither map of a case (labels discovered per case)."""
    empty = np.zeros((1, 1), dtype=bool)
    row: dict[str, Any] = {"class": name, "label": value}
    row.update(class_metrics(empty, empty, empty_score=empty_score))  # specificity 1, volumes 0
    row["nsd_tolerance_mm"] = None  # no border: no tolerance applies
    if lesions:
        found = match_lesions(empty, empty)  # no lesion in either map
        row.update({k: found[k] for k in LESION_METRICS})
        row["lesion_sizes"], row["lesion_matched"] = [], []
    for spec in extras:
        row[spec.name] = math.nan
    return row
