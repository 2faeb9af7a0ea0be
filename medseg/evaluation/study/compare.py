"""``medseg compare``: several models' prediction folders against one reference folder.

Every model is scored with :func:`medseg.evaluation.run.evaluate_folders` (its full report goes
to ``OUT/<model>/``); then each model B after the first is compared with the first, A (the
baseline), per class and metric on the cases both scored, with the statistics of
:mod:`medseg.evaluation.study.paired`. Holm's adjustment runs over the classes of one metric and one
pair of models (the family a reader scans when asking "is B better for any organ?").
Writes ``comparison.csv``, ``comparison.json`` and ``comparison.html`` (a section with a
paired plot per class), and ``comparison.pdf`` with ``pdf``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import MedsegError
from medseg.evaluation import report
from medseg.evaluation.intervals import DEFAULT_STATS, StatsOptions
from medseg.evaluation.metrics import METRIC_INFO
from medseg.evaluation.options import EvaluationOptions
from medseg.evaluation.report.folder import check_target, relocate, report_folder
from medseg.evaluation.run import evaluate_folders
from medseg.evaluation.stats import IMPUTED_METRICS
from medseg.evaluation.study.compare_criteria import judge_comparison
from medseg.evaluation.study.paired import bh, holm, paired_difference
from medseg.io.atomic import write_text_atomic

#: metrics compared by default
COMPARE_METRICS = ("dice", "iou", "hd95", "assd", "nsd", "abs_volume_diff_ml")
COLUMNS = ("model_a", "model_b", "class", "metric", "n_pairs", "n_excluded", "n_imputed",
           "missing_distance", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
           "ci_low_mc_se", "ci_high_mc_se", "ci_note", "p_wilcoxon", "n_wilcoxon",
           "wilcoxon_method", "p_holm", "p_fdr", "hl_estimate", "hl_ci_low", "hl_ci_high",
           "wins", "ties", "losses", "margin", "non_inferior", "non_inferior_note")
#: columns of ``paired_wide.csv`` (one row per case, class and metric; for R and the like)
WIDE_COLUMNS = ("case", "class", "metric", "model_a", "model_b", "a", "b", "difference")


def margin_for(margin: float | Mapping[str, float] | None, metric: str) -> float | None:
    """A number applies to unitless metrics (Dice, NSD, ...); a mapping names metrics
    (``{"dice": 0.02, "hd95": 1.0}``) with an optional ``"default"`` for unitless ones."""
    if margin is None:
        return None
    if isinstance(margin, Mapping):
        if metric in margin:
            return float(margin[metric])
        margin = margin.get("default")
        if margin is None:
            return None
    return float(margin) if METRIC_INFO.get(metric, ("",))[0] == "" else None


def compare_rows(
    models: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str] = COMPARE_METRICS,
    *,
    margin: float | Mapping[str, float] | None = None,
    options: StatsOptions | None = None,
    missing_distance: str = "worst",
) -> list[dict[str, Any]]:
    """Paired statistics of every model against the first, per class and metric.

    ``models``: name -> evaluation rows. Only cases scored (no error) for both enter.
    ``n_imputed``: pairs where either model's distance is the worst case (a missed or
    spurious structure under ``missing_distance="worst"``).
    """
    opts = options or DEFAULT_STATS
    names = list(models)
    if len(names) < 2:
        raise MedsegError("compare needs at least two prediction folders")
    base = names[0]
    out: list[dict[str, Any]] = []
    for other in names[1:]:
        a_rows = _by_key(models[base])
        b_rows = _by_key(models[other])
        keys = sorted(set(a_rows) & set(b_rows))
        classes = list(dict.fromkeys(k[1] for k in a_rows if k in b_rows))  # label order
        for metric in metrics:
            block = []
            for name in classes:
                ks = [k for k in keys if k[1] == name]
                a = [_num(a_rows[k].get(metric)) for k in ks]
                b = [_num(b_rows[k].get(metric)) for k in ks]
                stats = paired_difference(a, b, metric, margin=margin_for(margin, metric),
                                          options=opts, cases=[k[0] for k in ks])
                imputed = sum(1 for k in ks if metric in IMPUTED_METRICS and (
                    a_rows[k].get("missing_distance_mm") is not None
                    or b_rows[k].get("missing_distance_mm") is not None))
                block.append({"model_a": base, "model_b": other, "class": name, **stats,
                              "n_imputed": imputed, "missing_distance": missing_distance,
                              "cases": [k[0] for k in ks], "a": a, "b": b})
            ps = [r["p_wilcoxon"] for r in block]
            for item, p, q in zip(block, holm(ps), bh(ps), strict=True):
                item["p_holm"], item["p_fdr"] = p, q
            out.extend(block)
    return out


def wide_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per case, class and metric with both models' values and B - A."""
    out = []
    for r in rows:
        for case, a, b in zip(r["cases"], r["a"], r["b"], strict=True):
            out.append({"case": case, "class": r["class"], "metric": r["metric"],
                        "model_a": r["model_a"], "model_b": r["model_b"], "a": a, "b": b,
                        "difference": b - a})
    return out


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _by_key(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(r["case"], r["class"]): r for r in rows
            if r.get("label") is not None and r.get("status") != "error"}


def model_names(pred_dirs: Sequence[str | Path]) -> list[str]:
    """Names of the models: folder names, made unique and safe as folder names."""
    out: list[str] = []
    for d in pred_dirs:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(d).resolve().name) or "model"
        name, i = base, 2
        while name in out:
            name, i = f"{base}_{i}", i + 1
        out.append(name)
    return out


@dataclass
class ComparisonResult:
    rows: list[dict[str, Any]]
    models: dict[str, Any]
    files: dict[str, Path]
    criteria: dict[str, Any] | None = None


def compare_folders(
    ref_dir: str | Path,
    pred_dirs: Sequence[str | Path],
    out_dir: str | Path,
    options: EvaluationOptions | None = None,
    *,
    metrics: Sequence[str] = COMPARE_METRICS,
    margin: float | Mapping[str, float] | None = None,
    names: Sequence[str] | None = None,
    pdf: bool = False,
    study: Any = None,
    criteria: Sequence[Any] = (),
) -> ComparisonResult:
    """Evaluate every prediction folder and compare them (see the module docstring).

    ``criteria``: :class:`~medseg.evaluation.study.compare_criteria.ComparisonCriterion`
    judged on the comparison (``comparison_criteria.json``, the page, ``criteria``)."""

    if len(pred_dirs) < 2:
        raise MedsegError("compare needs at least two --pred folders")
    names = list(names) if names else model_names(pred_dirs)
    check_target(out_dir)
    with report_folder(out_dir) as out:
        results = {name: evaluate_folders(pred, ref_dir, out / name, options,
                                          study=study, atomic=False)
                   for name, pred in zip(names, pred_dirs, strict=True)}
        known = set(results[names[0]].rows[0]) if results[names[0]].rows else set()
        unknown = [m for m in metrics if known and m not in known]
        if unknown:
            raise MedsegError(f"unknown metric {', '.join(unknown)} for compare")
        opts = options or EvaluationOptions()
        rows = compare_rows({n: r.rows for n, r in results.items()}, metrics, margin=margin,
                            options=opts.stats, missing_distance=opts.missing_distance)
        files = {"csv": out / "comparison.csv", "json": out / "comparison.json",
                 "html": out / "comparison.html", "wide": out / "paired_wide.csv"}
        report.write_csv(files["csv"], rows, COLUMNS)
        report.write_csv(files["wide"], wide_rows(rows), WIDE_COLUMNS)
        document = {
            "models": {n: str(p) for n, p in zip(names, pred_dirs, strict=True)},
            "reference": str(ref_dir),
            "baseline": names[0],
            "margin": margin,
            "metrics": list(metrics),
            "comparisons": rows,
            "settings": results[names[0]].settings,
            "intervals": opts.stats.record(),
            "missing_distance": opts.missing_distance,
            "method": f"paired {opts.stats.describe()} of the mean difference B - A; "
                      "two-sided Wilcoxon signed-rank test (zero differences and near-ties "
                      "within 1e-9 treated as such; exact, permutation or normal method as "
                      "wilcoxon_method says) with the Hodges-Lehmann estimate and its CI; "
                      "Holm (family-wise) and Benjamini-Hochberg (FDR) adjustments over "
                      "classes per metric and model pair; missing distances: "
                      f"{opts.missing_distance}",
        }
        if criteria:
            document["criteria"] = judge_comparison(criteria, rows, opts.stats.min_n)
            files["criteria"] = out / "comparison_criteria.json"
            write_text_atomic(files["criteria"], json.dumps(
                report.json_safe(document["criteria"]), indent=2, allow_nan=False) + "\n")
        write_text_atomic(files["json"], json.dumps(report.json_safe(document), indent=2,
                                                    allow_nan=False) + "\n")
        write_text_atomic(files["html"], report.render_comparison_page(document))
        if pdf:
            files["pdf"] = report.html_to_pdf(files["html"], out / "comparison.pdf")
    target = Path(out_dir)
    for res in results.values():
        res.files = relocate(res.files, out, target)
    return ComparisonResult(rows=rows, models=results, files=relocate(files, out, target),
                            criteria=document.get("criteria"))
